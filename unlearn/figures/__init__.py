"""The paper's figures and the reviewers' sweeps: specs (conf/figures/<fig>.yaml: which table blocks and rows, crossed
with which grid), a runner that runs only missing jobs (sweep.py), and matplotlib drawings from saved results
(draw.py; landscape.py for the loss surface). Command line: `python -m unlearn.figures run|draw <fig>`."""
