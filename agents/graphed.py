"""`agent.compile=graph`: one whole training update (forward, loss, penalty, backward, optimizer step) captured as a
CUDA graph after a few eager warm-up updates, then replayed with each batch copied into static input tensors.

A captured graph reads and writes fixed addresses. A write into an existing tensor (`copy_`, `mul_`, `zero_`,
`load_state_dict` with the default assign=False) is seen by the next replay; a tensor that is REBOUND (`p.data = x`,
a new optimizer or optimizer state, new modules) is not: the graph keeps computing with the old memory, silently.
So `UpdateCapture` keeps a fingerprint (the address of every state tensor the update touches, taken when the update
is captured) and the agent drops the capture whenever that state may have moved: explicitly where it replaces
structure (plasticity injection, a rebuilt optimizer, a checkpoint load, a new regulariser) and by comparing the
fingerprint after every reset (`refresh`). The next update then warms up and captures anew.

The fingerprint sees tensors only: a Python number the step reads (an optimizer's learning rate, SAC's tau, a
regulariser's coefficient) is fixed into the graph when it is captured, so whatever changes one must call
`invalidate` (nothing does today).

The same bookkeeping runs in every mode, so the CPU test (tests/test_capture_guard.py) checks with the real resets
that every state tensor is either written in place or the capture dropped; only the capture itself needs CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

Step = Callable[[dict[str, Tensor]], dict[str, Tensor]]


def state_fingerprint(tensors: Iterable[Tensor]) -> tuple[int, ...]:
    """The storage address of every tensor, in order: equal fingerprints mean nothing was rebound."""
    return tuple(t.data_ptr() for t in tensors)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every tensor of an optimizer's per-parameter state (Adam's step, exp_avg, exp_avg_sq; RMSprop's ...)."""
    return [v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)]


class UpdateCapture:
    """Runs an agent's update step, eagerly or as a replayed CUDA graph (`graphed`), and tracks whether the state
    the step was captured against is still where it was.

    `step(inputs) -> outputs` must take device tensors of fixed shapes and dtypes, read the agent's state only
    through tensors that `state()` lists, and not synchronise with the host. `generation` counts the captures
    dropped (a test reads it)."""

    def __init__(self, step: Step, state: Callable[[], Iterable[Tensor]], graphed: bool, warmup: int = 3):
        if graphed and not torch.cuda.is_available():
            raise RuntimeError("UpdateCapture(graphed=True) needs CUDA")
        self.step, self.state, self.graphed, self.warmup = step, state, graphed, warmup
        self.side: torch.cuda.Stream | None = None  # the warm-up stream, made once on the inputs' device
        self.generation = 0
        self.reasons: list[str] = []  # why each capture was dropped, in order (kept short: one per reset at most)
        self._clear()

    def _clear(self) -> None:
        self.fingerprint: tuple[int, ...] | None = None  # taken at capture (eager mode: after the first update)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_in: dict[str, Tensor] = {}
        self.static_out: dict[str, Tensor] = {}
        self.eager_updates = 0  # warm-up updates run since the last drop

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """One update on `inputs`; outputs are fresh tensors (a replay overwrites the static ones)."""
        if not self.graphed:
            outputs = self.step(inputs)
            if self.fingerprint is None:  # after the step, as a capture is taken after warm-up: optimizer state exists
                self.fingerprint = state_fingerprint(self.state())
            return outputs
        if self.graph is None:
            with torch.cuda.device(next(iter(inputs.values())).device):
                return self._warm_up_or_capture(inputs)
        for key, value in inputs.items():
            self.static_in[key].copy_(value, non_blocking=True)
        self.graph.replay()
        return {key: value.clone() for key, value in self.static_out.items()}

    def _warm_up_or_capture(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Eager updates on a side stream (as CUDA-graph capture requires: the caching allocator and cuDNN settle
        there) until `warmup` of them have run, then capture the next one and replay it once."""
        if not self.static_in:
            self.static_in = {key: value.detach().clone() for key, value in inputs.items()}
        else:
            for key, value in inputs.items():
                self.static_in[key].copy_(value)
        if self.eager_updates < self.warmup:
            self.side = self.side or torch.cuda.Stream()
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                outputs = self.step(self.static_in)
            torch.cuda.current_stream().wait_stream(self.side)
            self.eager_updates += 1
            return outputs
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # recorded, not run: the replay below performs this update
                self.static_out = self.step(self.static_in)
        except Exception as err:
            # A failing step inside the capture also fails the capture's end; the step's own error is the cause.
            cause = err.__context__ if err.__context__ is not None else err
            self._clear()
            raise RuntimeError(
                f"agent.compile=graph: the update could not be captured as a CUDA graph: {cause}"
            ) from err
        self.graph = graph
        self.fingerprint = state_fingerprint(self.state())
        graph.replay()
        return {key: value.clone() for key, value in self.static_out.items()}

    def invalidate(self, reason: str) -> None:
        """Drop the capture (a no-op count where nothing was captured yet): the next update warms up and captures
        anew against the state as it is then."""
        if self.fingerprint is not None or self.graph is not None:
            self.generation += 1
            self.reasons = (self.reasons + [reason])[-20:]
        self._clear()

    def refresh(self, reason: str) -> bool:
        """After a change of the agent's state: drop the capture if any state tensor moved (was rebound, or state
        appeared or vanished) since it was taken; returns whether it was dropped."""
        if self.fingerprint is None or state_fingerprint(self.state()) == self.fingerprint:
            return False
        self.invalidate(reason)
        return True
