"""SCRUB: student-teacher unlearning (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning")."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.methods.base import RecipeMethod, Task, probe
from unlearn.progress import Progress
from unlearn.steps import accumulated_step
from unlearn.train import batches, prefetched


def distill_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(p_teacher || p_student) at temperature T, times T^2, averaged over the batch.

    The direction d(x) = KL(p(f(x; w_o)) || p(f(x; w_u))) is the one of the SCRUB paper and of the
    authors' `DistillKL` (F.kl_div(log p_s, p_t)).
    """
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    pt = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_ps, pt, reduction="sum") * temperature ** 2 / student_logits.shape[0]


class SCRUB(RecipeMethod):
    """Epoch e: if e < max_steps, one max pass over D_f (ascend the KL to the frozen teacher), then one
    min pass over D_r (ce_weight * CE + kl_weight * KL to the teacher). One optimiser for both, as
    in the authors' code (their msteps, sgda_epochs, gamma, alpha, kd_T, del_batch_size). `accumulate`
    cuts both passes' batches (forget_batch_size, batch_size) into that many micro-batches, teacher included."""

    def __init__(self, *, max_steps: int, temperature: float, ce_weight: float, kl_weight: float,
                 forget_batch_size: int, augment: bool, **recipe):
        super().__init__(**recipe)
        checks = [
            ("max_steps", integer(max_steps, 0), "an integer >= 0 (>= epochs: every epoch)"),
            ("temperature", finite(temperature) and temperature > 0, "a finite number > 0"),
            ("ce_weight", finite(ce_weight) and ce_weight >= 0, "a finite number >= 0"),
            ("kl_weight", finite(kl_weight) and kl_weight >= 0, "a finite number >= 0"),
            ("forget_batch_size", integer(forget_batch_size, 1), "an integer >= 1"),
            ("augment", isinstance(augment, bool), "true or false"),
        ]
        require(checks, locals(), "scrub: ")
        if forget_batch_size % self.recipe.accumulate:
            raise ValueError(f"scrub: accumulate={self.recipe.accumulate} is invalid; allowed: an integer >= 1 "
                             f"dividing batch_size={self.recipe.batch_size} and forget_batch_size={forget_batch_size}")
        self.max_steps, self.temperature = max_steps, temperature
        self.ce_weight, self.kl_weight, self.forget_batch_size = ce_weight, kl_weight, forget_batch_size
        self.augment = augment

    def unlearn(self, model: nn.Module, task: Task) -> nn.Module:
        r = self.recipe
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        g = torch.Generator().manual_seed(task.seed)
        opt = r.optimizer_for(model.parameters())
        steps = (self.max_steps * math.ceil(len(task.split.forget) / self.forget_batch_size)
                 + r.epochs * math.ceil(len(task.split.retain) / r.batch_size))
        sched = r.scheduler_for(opt, steps)
        step = 0
        with Progress("unlearn SCRUB", r.epochs, opt=opt, lr_key=f"method.lr={r.lr:g}") as progress:
            for epoch in progress.epochs():
                logged = {"unlearn/lr": opt.param_groups[0]["lr"], "unlearn/epoch": epoch + 1}
                if epoch < self.max_steps:
                    logged["unlearn/forget_kl"] = -self.max_pass(model, teacher, task, opt, g, sched, progress)
                    step += math.ceil(len(task.split.forget) / self.forget_batch_size)
                logged["unlearn/retain_loss"] = self.min_pass(model, teacher, task, opt, g, sched, progress)
                step += math.ceil(len(task.split.retain) / r.batch_size)
                logged |= probe(task, model)
                progress.done(**{k.removeprefix("unlearn/"): v for k, v in logged.items()
                                 if k not in ("unlearn/epoch", "unlearn/lr")})
                task.log(logged, step)
        return model.eval()

    def workload(self, task: Task) -> tuple[int, int] | None:
        """D_r every epoch, D_f in the first max_steps: as images per epoch on average."""
        forget = len(task.split.forget) * min(self.max_steps, self.recipe.epochs)
        return len(task.split.retain) + math.ceil(forget / self.recipe.epochs), self.recipe.epochs

    def _pass(self, model, teacher, task, idx, batch_size, opt, g, sched, loss_fn, progress=None) -> float:
        """One optimisation pass over `idx`; returns the mean loss of its steps (`progress` checks each loss)."""
        data = task.data
        model.train()  # student in train mode, teacher in eval mode (as the authors)
        total, n = 0.0, 0
        stepper = task.compute.stepper(model, opt)
        for b in prefetched(batches(idx, batch_size, g), data.x_train):
            x, y = data.prepare(data.x_train[b], train=self.augment, generator=g), data.y_train[b]

            def loss_of(rows: slice, x=x, y=y) -> Tensor:
                with torch.no_grad():
                    t_logits = teacher(x[rows])
                return loss_fn(model(x[rows]), t_logits, y[rows])
            check = progress.check if progress is not None else lambda loss: None
            loss = accumulated_step(stepper, len(b), self.recipe.accumulate, loss_of, check)
            if sched is not None:
                sched.step()
            total, n = total + loss.double(), n + 1  # on the device: one host read per pass, not per step
        return float(total) / max(1, n)

    def max_loss(self, student_logits: Tensor, teacher_logits: Tensor, y: Tensor) -> Tensor:
        """Loss of a max step on D_f: -KL(teacher || student) (thirdparty/repdistiller/helper/loops.py:243-244)."""
        return -distill_kl(student_logits, teacher_logits, self.temperature)

    def min_loss(self, student_logits: Tensor, teacher_logits: Tensor, y: Tensor) -> Tensor:
        """Loss of a min step on D_r: ce_weight * CE + kl_weight * KL(teacher || student)."""
        return (self.ce_weight * F.cross_entropy(student_logits, y)
                + self.kl_weight * distill_kl(student_logits, teacher_logits, self.temperature))

    def max_pass(self, model, teacher, task, opt, g, sched=None, progress=None) -> float:
        """One pass over D_f maximising the KL between student and teacher; returns the mean loss (-KL)."""
        return self._pass(model, teacher, task, task.split.forget, self.forget_batch_size, opt, g, sched,
                          self.max_loss, progress)

    def min_pass(self, model, teacher, task, opt, g, sched=None, progress=None) -> float:
        """One pass over D_r: stay close to the teacher and keep the true labels right; returns the mean loss."""
        return self._pass(model, teacher, task, task.split.retain, self.recipe.batch_size, opt, g, sched,
                          self.min_loss, progress)
