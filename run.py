"""Run one unlearning experiment, or a sweep with -m (the same as the installed `unlearn` command).

    python run.py method=ugradsl paradigm=random smooth_rate=-0.5 p=0.8 seed=1
    python run.py -m method=ga,ugradsl seed=1,2,3
"""
from unlearn.app import main

if __name__ == "__main__":
    main()
