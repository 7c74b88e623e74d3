"""The pieces of a training run; the loop itself is `petseg_lib/train.py`.

`config.py` says what a run is asked to do (`course.py`: what the notebooks ask),
`loaders.py` feeds it batches, `losses.py` and `step.py` make one step, `lr_finder.py` picks a
learning rate, `schedules.py` and `time_budget.py` set its rate per epoch and how many epochs
fit, `history.py` and `logs.py` keep its numbers, `checkpoint.py` saves and restores it,
`distributed.py` spreads it over processes under torchrun.
"""
