"""Training: the loop of the design report, written out step by step.

Each epoch: forward -> loss (BCE-with-logits in the report; losses.py has others) -> backward
-> Adam step over the shuffled training set, then `evaluate` on the validation set. The best
model by validation Dice is saved to `checkpoints/<run_name>_best.pth`; `<run_name>_last.pth`
also keeps the optimizer so a run can be resumed. At the end the curves go to
`outputs/<run_name>_metrics.png`.

    python -m petseg_lib.train --model unet --epochs 20 --batch_size 8 --learning_rate 1e-4

Speed-ups (speed.py) appear in the loop as single lines: the memory layout, autocast and the
gradient scaler are switched on or off by TrainConfig, never by an `if` in the loop. The
command line's options are read into a TrainConfig by `config.parse_args`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .cli import run_cli, writable_folder
from .data.oxford_pet import find_dataset
from .evaluation.evaluate import dice_score
from .evaluation.figures import save_lr_finder, save_training_curves
from .models import build_model
from .models.classes import describe_class_iou
from .speed import (
    describe_precision,
    keep_freed_memory,
    memory_format,
    pick_device,
    speedups,
)
from .threads import step_threads
from .training import distributed
from .training.checkpoint import (
    checkpoint_payload,
    keep_earlier_run,
    restore_training,
    run_paths,
    save_checkpoint,
    training_data,
    training_state,
)
from .training.config import TrainConfig, model_settings, parse_command
from .training.history import diverged_epoch, new_history, print_epoch, record_epoch, write_history
from .training.loaders import make_loaders, shuffle_generator
from .training.logs import first_samples, open_run_log
from .training.losses import build_loss
from .training.lr_finder import find_learning_rate
from .training.multitask import class_accuracy, correct_guesses, with_aux_head
from .training.schedules import make_scheduler
from .training.step import forward_loss, make_optimizer, optimizer_step
from .training.time_budget import TimeBudget


def train_one_epoch(model: nn.Module, loader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device | str,
                    epoch: int = 0, progress: bool = True, amp: bool = False,
                    scaler: torch.amp.GradScaler | None = None,
                    channels_last: bool = False, classes: int = 1,
                    aux_weight: float = 0.0) -> tuple[float, ...]:
    """One pass over LOADER; returns the mean loss and mean Dice of the training batches.

    amp runs the forward pass in float16 on CUDA (bfloat16 elsewhere); SCALER, when enabled,
    scales the loss so that small float16 gradients do not round to zero. A multi-task model
    (multitask.py) learns its class head with AUX_WEIGHT, and its accuracy is returned third.
    """
    device = torch.device(device)
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    total_loss = total_dice = seen = right = 0.0
    batches = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    for batch_index, batch in enumerate(batches):
        with step_threads(model, batch["image"], device):  # sized to the step (threads.py)
            logits, masks, loss, class_logits = forward_loss(
                model, batch, criterion, device, amp, channels_last, classes, aux_weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"The loss became {loss.item()} at epoch {epoch + 1}, "
                                         f"batch {batch_index + 1}: training stopped. Try a "
                                         "smaller learning rate; the best checkpoint is left "
                                         "as it was.")
            optimizer_step(loss, optimizer, scaler)
        n = masks.shape[0]
        total_loss += loss.item() * n
        total_dice += dice_score(logits.detach(), masks).item() * n
        seen += n
        if class_logits is not None:  # a multi-task model: did it name the species or breed?
            right += correct_guesses(class_logits.detach(), batch["label"])
        batches.set_postfix(loss=f"{loss.item():.4f}")
    means = (total_loss / seen, total_dice / seen)
    return means if class_logits is None else (*means, right / seen)


def train(config: TrainConfig, on_epoch_end=None, train_set: Dataset | None = None) -> dict:
    """Train one model as CONFIG says; returns the history of the four curves per epoch.

    TRAIN_SET, when given, replaces CONFIG's training split (e.g. pseudo_labels.py's photos).
    With a time budget, CONFIG.epochs is cut to the epochs that fit (time_budget.py).
    """
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    fast = speedups(config, device)
    torch.backends.cudnn.benchmark = fast["cudnn_benchmark"]
    data_path = distributed.main_first(find_dataset, config.data_path)  # sample made once
    train_loader, valid_loader = make_loaders(config, data_path, fast, train_set)
    data = training_data(data_path, len(getattr(train_loader.dataset, "names",
                                                train_loader.dataset)))
    shuffle = shuffle_generator(train_loader)  # its state is saved with each checkpoint
    model = build_model(config.model, **model_settings(config))
    model = model.to(device, memory_format=memory_format(fast["channels_last"]))
    net = with_aux_head(model, config.aux_task).to(device)  # `model`, or + a class head
    # The DDP (torchrun) and compiled models share their weights with `net`, which is saved.
    step_model = distributed.data_parallel(net, config.sync_bn)  # `net` without torchrun
    step_model = torch.compile(step_model) if config.compile else step_model
    optimizer, scaler = make_optimizer(net, config.learning_rate, config.weight_decay, device,
                                       fast["amp"])
    scheduler = make_scheduler(optimizer, config)
    criterion = build_loss(config.loss)
    best_path, last_path = run_paths(config)
    history, best_dice, start_epoch = new_history(), -1.0, 0
    if config.resume and last_path.exists():
        history, best_dice, start_epoch = restore_training(
            last_path, config, net, optimizer, scheduler, scaler, shuffle)
    elif distributed.is_main():
        if config.resume:
            print(f"--resume: there is no {last_path} yet, so this run starts from scratch.")
        keep_earlier_run(best_path)  # a fresh run never silently replaces a trained model

    print(f"Training {config.run_name} on {device} with {len(train_loader.dataset)} training "
          f"and {len(valid_loader.dataset)} validation samples from {data_path}; "
          f"{describe_precision(device, fast['amp'])}.")
    if config.epoch_samples is not None and not distributed.is_distributed():
        print(describe_budget(config, len(train_loader.dataset)))
    epochs = tqdm(range(start_epoch, config.epochs), desc=config.run_name,
                  disable=not config.progress)
    log = open_run_log(config.log if distributed.is_main() else None,
                       Path(config.output_dir) / "logs", config.run_name)
    shown = first_samples(valid_loader.dataset)  # the images TensorBoard shows each epoch
    valid = {}  # the last epoch's validation scores
    budget = TimeBudget(config.time_budget, config.epochs)  # epochs that fit (time_budget.py)
    with keep_freed_memory(fast["keep_memory"]), log:
        for epoch in epochs:
            if epoch == config.epochs:  # the time budget cut the run short
                break
            learning_rate = scheduler.get_last_lr()[0]  # the rate this epoch trains with
            distributed.begin_epoch(train_loader, epoch)  # torchrun: this epoch's shuffle
            train_loss, train_dice, *train_accuracy = distributed.mean_over_processes(
                train_one_epoch(step_model, train_loader, criterion, optimizer, device, epoch,
                                config.progress, amp=fast["amp"], scaler=scaler,
                                channels_last=fast["channels_last"], classes=config.classes,
                                aux_weight=config.aux_weight))
            scheduler.step()
            valid = distributed.evaluate(model, valid_loader, device, criterion, amp=fast["amp"])
            if train_accuracy:  # a multi-task run: its class head's accuracy too
                valid["accuracy"] = distributed.mean_over_processes(
                    (class_accuracy(net, valid_loader, device, fast["amp"]),))[0]
            record_epoch(history, train_loss, train_dice, valid, *train_accuracy)
            scheduler = budget.fit(config, optimizer, scheduler, epoch + 1)
            log.epoch(epoch + 1, history, learning_rate, model, shown)
            epochs.set_postfix(valid_dice=f"{valid['dice']:.4f}")
            improved, best_dice = valid["dice"] > best_dice, max(best_dice, valid["dice"])
            if distributed.is_main():  # under torchrun only process 0 writes files
                if improved:
                    save_checkpoint(checkpoint_payload(net, config, epoch + 1, valid, data),
                                    best_path)
                save_checkpoint(training_state(net, config, epoch + 1, valid, optimizer,
                                               scheduler, scaler, history, best_dice,
                                               shuffle, data), last_path)
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)

    if distributed.is_main():
        write_history(history, config)  # outputs/<run_name>_history.json
        save_training_curves(history, config)  # outputs/<run_name>_metrics.png
    print(f"Best validation Dice {best_dice:.4f}; weights in {best_path}")
    if "mean_iou" in valid:  # three classes
        print(f"Last epoch's validation {describe_class_iou(valid)}")
    if (diverged := diverged_epoch(history)) is not None:
        print(f"The validation loss stopped being a number at epoch {diverged}: "
              f"the run diverged. Train again with a lower --learning_rate (this run: "
              f"{config.learning_rate:g}).")
    return history


def describe_budget(config: TrainConfig, samples: int) -> str:
    """One line: how many samples a run with epoch_samples sees, whatever the dataset's size."""
    total = config.epochs * config.epoch_samples
    return (f"Each epoch draws {config.epoch_samples} of the {samples} training samples at "
            f"random ({total:,} in all over {config.epochs} epochs), so the run takes as long "
            "on the full dataset as on a small one.")


# ----------------------------------------------------------------------- the command line

def main(argv: list[str] | None = None) -> dict:
    """Entry point of `python -m petseg_lib.train`."""
    config, find_lr = parse_command(argv)
    writable_folder(config.checkpoint_dir)
    writable_folder(config.output_dir)
    if find_lr:  # the learning-rate range test instead of a training run
        return report_lr_finder(config)
    with distributed.process_group(config.device):  # under torchrun (distributed.py)
        history = train(config, on_epoch_end=None if config.progress else print_epoch)
    if not history["valid_dice"] or not math.isfinite(history["valid_dice"][-1]):
        raise SystemExit("training produced no validation score")
    return history


def report_lr_finder(config: TrainConfig) -> dict:
    """Run the range test of CONFIG, print the suggested rate and save the curve's figure."""
    result = find_learning_rate(config)
    path = save_lr_finder(result, Path(config.output_dir) / f"{config.run_name}_lr_finder.png")
    print(f"Learning-rate range test of {config.run_name}: {len(result['rates'])} batches, "
          f"rates {result['rates'][0]:.1e} to {result['rates'][-1]:.1e}.")
    print(f"Suggested --learning_rate {result['suggested']:.1e}, where the smoothed loss fell "
          f"fastest; the curve is in {path}")
    return result


if __name__ == "__main__":
    run_cli(main)
