"""From predicted labels to estimates a researcher can defend: intervals on every metric, gold-standard samples,
calibrated probabilities, thresholds for binary tasks, and estimators that correct for misclassification.

No module here imports torch: they work on tables and arrays (numpy; scipy, statsmodels, patsy and ppi-python
where a method needs them, imported when it is used).
"""
