"""Scene descriptions of the synthetic dataset: coloured shapes whose action needs time to tell.

A `Scene` fully determines a video; paired actions (left/right, grow/shrink,
appear/disappear) are exact time reversals of each other, so a model that
pools frames without order cannot separate them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIONS = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "grow",
    "shrink",
    "appear",
    "disappear",
)
PAIRED_ACTION = {
    "move_left": "move_right",
    "move_right": "move_left",
    "move_up": "move_down",
    "move_down": "move_up",
    "grow": "shrink",
    "shrink": "grow",
    "appear": "disappear",
    "disappear": "appear",
}
# Actions sampled directly; their partners are sampled as exact reversals, so the
# two classes of a pair have mirror-image distributions by construction.
_SAMPLED_DIRECTLY = ("move_right", "move_down", "grow", "appear")

SHAPES = ("circle", "square", "triangle")
# Saturated colours with one channel >= 190 stay far from the dark grey backgrounds
# and from each other after 4:2:0 chroma subsampling.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (40, 90, 235),
    "yellow": (240, 220, 40),
    "white": (240, 240, 240),
}

MIN_TRAVEL_FRACTION = 0.4  # of the frame side, for the move_* actions
MIN_SIZE_RATIO = 2.0  # end/start size for grow (start/end for shrink)
MAX_DISTRACTORS = 2
MAX_DRIFT_FRACTION = 0.1  # of the frame side, for distractors
NOISE_STD = 3.0  # per-pixel Gaussian noise, in 0..255 units

_MOVE_DIRECTION = {
    "move_left": (-1, 0),
    "move_right": (1, 0),
    "move_up": (0, -1),  # image rows grow downwards
    "move_down": (0, 1),
}


@dataclass(frozen=True, kw_only=True)
class ObjectState:
    """Where an object is and how it looks at one instant; lengths in pixels."""

    x: float  # centre, from the left edge
    y: float  # centre, from the top edge
    size: float  # side of the bounding square (circle diameter, square side, triangle base)
    opacity: float  # 0 invisible .. 1 opaque

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise ValueError(f"size ({self.size}) must be > 0")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity ({self.opacity}) must be in [0, 1]")
        if not (math.isfinite(self.x) and math.isfinite(self.y)):
            raise ValueError(f"centre ({self.x}, {self.y}) must be finite")


@dataclass(frozen=True, kw_only=True)
class SceneObject:
    """A shape of one colour that goes linearly from `start` to `end` over the video."""

    shape: str
    colour: str
    start: ObjectState
    end: ObjectState

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape {self.shape!r} is not one of {', '.join(SHAPES)}")
        if self.colour not in COLOURS:
            raise ValueError(f"colour {self.colour!r} is not one of {', '.join(COLOURS)}")

    def state_at(self, frame_index: int, num_frames: int) -> ObjectState:
        """The state at `frame_index`, linear in u = frame_index / (num_frames - 1).

        Written as a weighted sum with integer weights so that the reversed
        object at frame T-1-t computes the very same floating-point sums.
        """
        if not 0 <= frame_index < num_frames:
            raise ValueError(f"frame_index ({frame_index}) must be in [0, {num_frames})")
        later = frame_index
        earlier = num_frames - 1 - frame_index
        span = num_frames - 1

        def mix(a: float, b: float) -> float:
            return (a * earlier + b * later) / span

        s, e = self.start, self.end
        return ObjectState(
            x=mix(s.x, e.x),
            y=mix(s.y, e.y),
            size=mix(s.size, e.size),
            opacity=mix(s.opacity, e.opacity),
        )

    def reversed(self) -> SceneObject:
        return SceneObject(shape=self.shape, colour=self.colour, start=self.end, end=self.start)

    def moves(self) -> bool:
        return (self.start.x, self.start.y) != (self.end.x, self.end.y)


@dataclass(frozen=True, kw_only=True)
class Scene:
    """Everything that determines one synthetic video; checks that it shows its `action`."""

    action: str
    size: int  # canvas width and height in pixels
    num_frames: int
    background: tuple[int, int, int]  # RGB
    noise_seeds: tuple[int, ...]  # one per frame
    primary: SceneObject
    distractors: tuple[SceneObject, ...] = ()

    def __post_init__(self) -> None:
        problem = _scene_problem(self)
        if problem is not None:
            raise ValueError(problem)

    @property
    def objects(self) -> tuple[SceneObject, ...]:
        """All objects in drawing order: distractors first, the primary on top."""
        return (*self.distractors, self.primary)

    def reversed(self) -> Scene:
        """The scene of the paired action whose frame t is this scene's frame T-1-t."""
        return Scene(
            action=PAIRED_ACTION[self.action],
            size=self.size,
            num_frames=self.num_frames,
            background=self.background,
            noise_seeds=self.noise_seeds[::-1],
            primary=self.primary.reversed(),
            distractors=tuple(d.reversed() for d in self.distractors),
        )

    def to_json(self) -> dict:
        """A JSON-ready description (for scenes.jsonl and error analysis)."""

        def state(s: ObjectState) -> dict:
            return {"x": s.x, "y": s.y, "size": s.size, "opacity": s.opacity}

        def obj(o: SceneObject) -> dict:
            return {
                "shape": o.shape,
                "colour": o.colour,
                "start": state(o.start),
                "end": state(o.end),
            }

        return {
            "action": self.action,
            "size": self.size,
            "num_frames": self.num_frames,
            "background": list(self.background),
            "noise_seeds": list(self.noise_seeds),
            "primary": obj(self.primary),
            "distractors": [obj(d) for d in self.distractors],
        }

    @classmethod
    def from_json(cls, values: dict) -> Scene:
        def obj(o: dict) -> SceneObject:
            return SceneObject(
                shape=o["shape"],
                colour=o["colour"],
                start=ObjectState(**o["start"]),
                end=ObjectState(**o["end"]),
            )

        return cls(
            action=values["action"],
            size=values["size"],
            num_frames=values["num_frames"],
            background=tuple(values["background"]),
            noise_seeds=tuple(values["noise_seeds"]),
            primary=obj(values["primary"]),
            distractors=tuple(obj(d) for d in values["distractors"]),
        )


def _scene_problem(scene: Scene) -> str | None:
    """Why `scene` is not a valid scene of its action, or None."""
    if scene.action not in ACTIONS:
        return f"action {scene.action!r} is not one of {', '.join(ACTIONS)}"
    if scene.size < 8:
        return f"size ({scene.size}) must be >= 8"
    if scene.num_frames < 2:
        return f"num_frames ({scene.num_frames}) must be >= 2"
    if len(scene.noise_seeds) != scene.num_frames:
        return f"noise_seeds has {len(scene.noise_seeds)} seeds for {scene.num_frames} frames"
    if any(not 0 <= seed < 2**63 for seed in scene.noise_seeds):
        return "noise_seeds must be in [0, 2**63)"
    if len(scene.background) != 3 or any(not 0 <= v <= 255 for v in scene.background):
        return f"background {scene.background} must be three values in [0, 255]"
    if len(scene.distractors) > MAX_DISTRACTORS:
        return f"{len(scene.distractors)} distractors; at most {MAX_DISTRACTORS} allowed"
    colours = [o.colour for o in scene.objects]
    if len(set(colours)) != len(colours):
        return f"object colours {colours} must all differ"
    for obj in scene.objects:
        for state in (obj.start, obj.end):
            half = state.size / 2
            if not (half <= state.x <= scene.size - half and half <= state.y <= scene.size - half):
                return (
                    f"the {obj.colour} {obj.shape} at ({state.x:.1f}, {state.y:.1f}) "
                    f"of size {state.size:.1f} leaves the {scene.size}x{scene.size} canvas"
                )
    for d in scene.distractors:
        drift = math.hypot(d.end.x - d.start.x, d.end.y - d.start.y)
        if drift > MAX_DRIFT_FRACTION * scene.size + 1e-9:
            return (
                f"distractor {d.colour} {d.shape} drifts {drift:.1f} px; "
                f"at most {MAX_DRIFT_FRACTION:.0%} of {scene.size} allowed"
            )
        if d.start.size != d.end.size or d.start.opacity != 1.0 or d.end.opacity != 1.0:
            return f"distractor {d.colour} {d.shape} must keep its size and stay opaque"
    return _action_problem(scene.action, scene.primary, scene.size)


def _action_problem(action: str, primary: SceneObject, size: int) -> str | None:
    s, e = primary.start, primary.end
    fixed_position = (s.x, s.y) == (e.x, e.y)
    if action in _MOVE_DIRECTION:
        dx, dy = _MOVE_DIRECTION[action]
        along = (e.x - s.x) * dx + (e.y - s.y) * dy
        across = (e.y - s.y) if dx else (e.x - s.x)
        if along < MIN_TRAVEL_FRACTION * size:
            return (
                f"{action} needs the primary to travel >= {MIN_TRAVEL_FRACTION:.0%} of "
                f"{size} px that way; it travels {along:.1f} px"
            )
        if across != 0 or s.size != e.size or s.opacity != 1.0 or e.opacity != 1.0:
            return f"{action} must change only the primary's {'x' if dx else 'y'}"
    elif action in ("grow", "shrink"):
        small, large = (s.size, e.size) if action == "grow" else (e.size, s.size)
        if large < MIN_SIZE_RATIO * small:
            return (
                f"{action} needs a size change >= {MIN_SIZE_RATIO}x; "
                f"it goes from {s.size:.1f} to {e.size:.1f} px"
            )
        if not fixed_position or s.opacity != 1.0 or e.opacity != 1.0:
            return f"{action} must change only the primary's size"
    else:
        wanted = (0.0, 1.0) if action == "appear" else (1.0, 0.0)
        if (s.opacity, e.opacity) != wanted:
            return (
                f"{action} needs opacity {wanted[0]:g} -> {wanted[1]:g}; "
                f"got {s.opacity:g} -> {e.opacity:g}"
            )
        if not fixed_position or s.size != e.size:
            return f"{action} must change only the primary's opacity"
    return None


def sample_scene(action: str, rng: np.random.Generator, *, size: int, num_frames: int) -> Scene:
    """A random scene of `action` on a `size`x`size` canvas, drawn from `rng` only.

    Partner actions (move_left, move_up, shrink, disappear) are sampled as the
    reversal of their pair's scene, so a pair's distributions mirror each other.
    """
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if size < 32:
        raise ValueError(f"size ({size}) must be >= 32")
    if num_frames < 2:
        raise ValueError(f"num_frames ({num_frames}) must be >= 2")
    if action not in _SAMPLED_DIRECTLY:
        return sample_scene(PAIRED_ACTION[action], rng, size=size, num_frames=num_frames).reversed()

    colour_names = list(COLOURS)
    colour_order = rng.permutation(len(colour_names))
    primary = _sample_primary(action, rng, size, colour_names[colour_order[0]])
    num_distractors = int(rng.integers(0, MAX_DISTRACTORS + 1))
    distractors: list[SceneObject] = []
    for index in range(num_distractors):
        placed = _sample_distractor(
            rng, size, colour_names[colour_order[index + 1]], [primary, *distractors]
        )
        if placed is not None:  # a crowded canvas keeps fewer distractors
            distractors.append(placed)
    grey = rng.uniform(25, 85)
    tint = rng.uniform(-8, 8, size=3)
    background = tuple(int(round(grey + t)) for t in tint)
    noise_seeds = tuple(int(s) for s in rng.integers(0, 2**63, size=num_frames))
    return Scene(
        action=action,
        size=size,
        num_frames=num_frames,
        background=background,
        noise_seeds=noise_seeds,
        primary=primary,
        distractors=tuple(distractors),
    )


def _sample_primary(action: str, rng: np.random.Generator, size: int, colour: str) -> SceneObject:
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if action in ("move_right", "move_down"):
        side = rng.uniform(0.2, 0.28) * size
        low, high = side / 2 + 1, size - side / 2 - 1
        travel = min(rng.uniform(0.45, 0.65) * size, high - low)
        a = rng.uniform(low, high - travel)
        b = rng.uniform(low, high)
        if action == "move_right":
            start, end = (a, b), (a + travel, b)
        else:
            start, end = (b, a), (b, a + travel)
        return SceneObject(
            shape=shape,
            colour=colour,
            start=ObjectState(x=start[0], y=start[1], size=side, opacity=1.0),
            end=ObjectState(x=end[0], y=end[1], size=side, opacity=1.0),
        )
    if action == "grow":
        small = rng.uniform(0.16, 0.22) * size
        large = small * rng.uniform(2.1, 2.5)
        x, y = _point(rng, size, margin=large / 2 + 1)
        return SceneObject(
            shape=shape,
            colour=colour,
            start=ObjectState(x=x, y=y, size=small, opacity=1.0),
            end=ObjectState(x=x, y=y, size=large, opacity=1.0),
        )
    assert action == "appear", action
    side = rng.uniform(0.22, 0.32) * size
    x, y = _point(rng, size, margin=side / 2 + 1)
    return SceneObject(
        shape=shape,
        colour=colour,
        start=ObjectState(x=x, y=y, size=side, opacity=0.0),
        end=ObjectState(x=x, y=y, size=side, opacity=1.0),
    )


def _point(rng: np.random.Generator, size: int, *, margin: float) -> tuple[float, float]:
    """A uniform point at least `margin` from every edge of the canvas."""
    x, y = rng.uniform(margin, size - margin, size=2)
    return float(x), float(y)


def _sample_distractor(
    rng: np.random.Generator, size: int, colour: str, others: list[SceneObject]
) -> SceneObject | None:
    """A small static or slowly drifting shape clear of `others`, or None after 50 misses."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    side = rng.uniform(0.14, 0.2) * size
    drifts = bool(rng.integers(2))
    for _ in range(50):
        x0, y0 = _point(rng, size, margin=side / 2 + 1)
        if drifts:
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(0.04, MAX_DRIFT_FRACTION) * size
            x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        else:
            x1, y1 = x0, y0
        if not all(side / 2 + 1 <= v <= size - side / 2 - 1 for v in (x1, y1)):
            continue
        candidate = SceneObject(
            shape=shape,
            colour=colour,
            start=ObjectState(x=x0, y=y0, size=side, opacity=1.0),
            end=ObjectState(x=x1, y=y1, size=side, opacity=1.0),
        )
        if all(not _boxes_overlap(candidate, other, gap=2.0) for other in others):
            return candidate
    return None


def swept_box(obj: SceneObject) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) covering the object over the whole video.

    Position and size are linear in time, so the box of the start and end boxes covers it.
    """
    boxes = [
        (s.x - s.size / 2, s.y - s.size / 2, s.x + s.size / 2, s.y + s.size / 2)
        for s in (obj.start, obj.end)
    ]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _boxes_overlap(a: SceneObject, b: SceneObject, *, gap: float) -> bool:
    al, at, ar, ab = swept_box(a)
    bl, bt, br, bb = swept_box(b)
    return al < br + gap and bl < ar + gap and at < bb + gap and bt < ab + gap
