"""From logits to judgements and pictures: the threshold, the metrics, evaluation runs, figures.

`threshold.py` holds the one rule that turns logits into a mask; `predict.py` runs a model
on images (mirror TTA, a photo's own size); `metrics.py` counts Dice and IoU;
`evaluate.py` runs them over a dataset; `figures.py` draws every picture of the course.
"""
