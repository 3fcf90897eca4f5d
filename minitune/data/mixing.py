"""Task mixing: spend the training budget where the loss is, not evenly over tasks.

With uniform batches, a task the model solved long ago (classification, dialogue) keeps its
share of every batch. `TaskMixer` instead draws the task of each example by a weight, and the
training loop sets the weights from each task's current loss on a small held-out slice of the
training data (`task_weights`): a task with twice the loss gets twice the examples, and a floor
keeps every task in the mix, so a solved task is still revisited.

    mixer = TaskMixer(examples, tasks, batch_size=16, window=4, seed=0)  # holds out mixer.probe
    batch = next(mixer)                       # (0, k, [EncodedExample, ...]), like batch_stream
    mixer.weights = task_weights({"classify": 0.01, "translate": 2.0}, floor=0.2)
    # -> {"classify": 0.2 / 2.2 ≈ 0.09, "translate": 2.0 / 2.2 ≈ 0.91} (floor: 0.2 × the mean)

Batches are made as `batch_stream` makes them: a window of `window` batches is drawn, sorted by
length, cut into batches and shuffled. Within a task, examples come in a shuffled order and
each is used once before any is used again. Everything the mixer will do next is in
`state_dict()`, so a resumed run draws the same batches.
"""

from __future__ import annotations

import random

from minitune.data.batching import EncodedExample

PROBE_SIZE = 8  # examples of each task held out of training, to measure its loss
FLOOR = 0.2  # no task's weight falls below this share of the mean loss's


def task_weights(losses: dict[str, float], floor: float) -> dict[str, float]:
    """Sampling weights proportional to each task's loss, each at least `floor` × the mean
    loss, normalised to sum to 1 (see the module docstring's example)."""
    mean = sum(losses.values()) / len(losses)
    raw = {task: max(loss, floor * mean) for task, loss in losses.items()}
    total = sum(raw.values())
    return {task: w / total for task, w in raw.items()}


class TaskMixer:
    """An endless stream of batches whose tasks are drawn by `weights` (uniform at first).

    The first `probe_size` examples of each task are not trained on: `probe[task]` holds them,
    for the loop to measure the task's loss with (`task_weights` turns losses into weights)."""

    def __init__(
        self,
        examples: list[EncodedExample],
        tasks: list[str],
        batch_size: int,
        window: int,
        seed: int,
        probe_size: int = PROBE_SIZE,
    ) -> None:
        self.examples, self.batch_size, self.window = examples, batch_size, window
        self.probe: dict[str, list[EncodedExample]] = {}
        self.pools: dict[str, list[int]] = {}  # task -> its examples' positions, shuffled
        for i, task in enumerate(tasks):
            if len(self.probe.setdefault(task, [])) < probe_size:
                self.probe[task].append(examples[i])
            else:
                self.pools.setdefault(task, []).append(i)
        if not self.pools:
            raise ValueError(
                f"task mixing: no task has more than {probe_size} examples (they "
                "are held out to measure its loss); give more data"
            )
        self.probe = {task: part for task, part in self.probe.items() if task in self.pools}
        self.rng = random.Random(f"task-mixer-{seed}")
        for pool in self.pools.values():
            self.rng.shuffle(pool)
        self.next_of = {task: 0 for task in self.pools}  # the next unused example of each task
        self.weights = {task: 1 / len(self.pools) for task in self.pools}
        self.pending: list[list[int]] = []  # the rest of the current window's batches
        self.count = 0  # batches given so far

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, int, list[EncodedExample]]:
        if not self.pending:
            self.pending = self._window()
        self.count += 1
        return 0, self.count - 1, [self.examples[i] for i in self.pending.pop()]

    def _take(self, task: str) -> int:
        """The next example of `task`; a task whose examples are all used starts over."""
        pool = self.pools[task]
        if self.next_of[task] == len(pool):
            self.rng.shuffle(pool)
            self.next_of[task] = 0
        self.next_of[task] += 1
        return pool[self.next_of[task] - 1]

    def _window(self) -> list[list[int]]:
        """`window` batches: tasks drawn by weight, sorted by length, cut, shuffled."""
        names = list(self.weights)
        drawn = self.rng.choices(
            names, [self.weights[t] for t in names], k=self.batch_size * self.window
        )
        chosen = sorted((self._take(t) for t in drawn), key=self._length)
        batches = [chosen[i : i + self.batch_size] for i in range(0, len(chosen), self.batch_size)]
        self.rng.shuffle(batches)
        return batches

    def _length(self, i: int) -> int:
        return len(self.examples[i].source) + len(self.examples[i].target)

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {
            "pools": self.pools,
            "next_of": self.next_of,
            "weights": self.weights,
            "pending": self.pending,
            "count": self.count,
            "rng": [version, list(internal), gauss],
        }

    def load_state_dict(self, state: dict) -> None:
        self.pools = {task: list(pool) for task, pool in state["pools"].items()}
        self.next_of, self.weights = dict(state["next_of"]), dict(state["weights"])
        self.pending, self.count = [list(b) for b in state["pending"]], state["count"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
