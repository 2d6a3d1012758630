"""Run one unlearning experiment, or a sweep with -m: the same as the installed `unlearn` command.

    python run.py method=ugradsl paradigm=random smooth_rate=-0.5 p=0.8 seed=1
    python run.py -m method=ga,ugradsl seed=1,2,3
    python run.py --help     (groups, options, examples; `python run.py collect ...` as `unlearn collect ...`)
"""
from unlearn.__main__ import main

if __name__ == "__main__":
    main()
