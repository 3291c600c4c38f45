"""The demo trainings: small real PyTorch models on data they generate (nothing is downloaded).

Four behaviours a metrics pipeline must make visible: `converge` (a healthy run), `overfit` (validation
loss turns up while training loss keeps falling), `diverge` (a learning-rate ramp sends the loss to inf,
then NaN) and `crash` (a real exception mid-run, whose full traceback must reach the API).
"""

KINDS = ("converge", "overfit", "diverge", "crash")
