"""The structure record of a fitted file (its stream 0): network sizes and parameter coding.

Standard library only, so that ``aecli info`` can show it without torch.  Byte layout (all u8)::

    version(1 to 4) levels arm_hidden arm_depth synth_hidden synth_depth refine channels
    then, per parameter tensor in `tensor_shapes` order: exponent table

``version``: how the synthesis upsamples plane k (of ceil(H/2**k) x ceil(W/2**k) latents) to the
image: 1, bicubic straight to H x W (a scale of H / ceil(H/2**k), not exactly 2**-k, when 2**k does
not divide the size); 2, bicubic by exactly 2**k, then the top-left H x W kept, so that every plane
lines up with the pixel grid whatever the size (and the upsampling runs as two fast convolutions,
kernels.py); 3, as 2 with the ARM's means coded in sixteenths instead of quarters
(`mean_steps`, laplace.py); 4, as 3 with the synthesis reading the finest plane's 3x3 neighbourhood
of each pixel instead of its one value (`fine_kernel`).  Writers write 4 (3 for fits of under 500
iterations: codec.structure_for); files of versions 1 to 3 still decode.
``exponent``: the tensor's integers are real values times 2**exponent; ``table``: the Laplace table
(0..TABLES-1) its integers are coded with.  Every size is bounded here, before anything is
allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = 4  # what writers write (for fits of LONG_FIT iterations or more, codec.py)
VERSIONS = (1, 2, 3, 4)  # what readers read
VERSION_NOTES = {1: "planes interpolated to the image size, means in quarters",
                 2: "planes upsampled by exactly 2^k, means in quarters",
                 3: "planes upsampled by exactly 2^k, means in sixteenths",
                 4: "as 3 (means in sixteenths), synthesis reads the finest plane's 3x3"}
MAX_LEVELS = 8
MAX_ARM_HIDDEN = 32
MAX_ARM_DEPTH = 3
MAX_SYNTH_HIDDEN = 48
MAX_SYNTH_DEPTH = 3
MAX_REFINE = 3
MAX_EXPONENT = 16
SCALE_LEVELS = 64  # Laplace scales of the tables (laplace.py)
OFFSETS = 8  # same-plane neighbours the ARM reads (context.py)
COARSE = 9  # coarser-plane values the ARM reads
PHASES = 4
FIXED_SIZE = 8


class HeaderError(ValueError):
    """The structure record is malformed; the message is one line."""


def within(name: str, v: object, lo: int, hi: int) -> None:
    if not isinstance(v, int) or not lo <= v <= hi:
        raise HeaderError(f"corrupt fitted header: {name} {v} (must be {lo}..{hi})")


@dataclass(frozen=True)
class Structure:
    levels: int = 7
    arm_hidden: int = 16
    arm_depth: int = 2
    synth_hidden: int = 16
    synth_depth: int = 2
    refine: int = 0
    channels: int = 3
    exponents: tuple[int, ...] = ()
    tables: tuple[int, ...] = ()
    version: int = VERSION

    @property
    def fine_kernel(self) -> int:
        """The synthesis reads the finest plane's fine_kernel x fine_kernel neighbourhood of each
        pixel (3 from version 4, 1 before)."""
        return 3 if self.version >= 4 else 1

    @property
    def arm_inputs(self) -> int:
        return OFFSETS + COARSE + PHASES + self.levels

    def arm_dims(self) -> list[int]:
        return [self.arm_inputs] + [self.arm_hidden] * self.arm_depth + [2]

    def synth_dims(self) -> list[int]:
        return [self.fine_kernel ** 2 + self.levels - 1] + [self.synth_hidden] * self.synth_depth + [self.channels]

    def tensor_shapes(self) -> list[tuple[int, ...]]:
        """Every parameter tensor, ARM first: (weight, bias) per layer; 1x1 synthesis layers as
        (out, in), 3x3 refinement layers as (out, in, 3, 3)."""
        shapes: list[tuple[int, ...]] = []
        for dims in (self.arm_dims(), self.synth_dims()):
            for i in range(len(dims) - 1):
                shapes += [(dims[i + 1], dims[i]), (dims[i + 1],)]
        for _ in range(self.refine):
            shapes += [(self.channels, self.channels, 3, 3), (self.channels,)]
        return shapes

    def arm_tensors(self) -> int:
        return 2 * self.arm_depth + 2

    def parameter_count(self) -> int:
        total = 0
        for s in self.tensor_shapes():
            n = 1
            for d in s:
                n *= d
            total += n
        return total

    def check_sizes(self) -> None:
        """The network sizes are within bounds (before anything they imply is read)."""
        if self.version not in VERSIONS:
            raise HeaderError(f"unsupported fitted codec version {self.version}")
        within("levels", self.levels, 1, MAX_LEVELS)
        within("ARM width", self.arm_hidden, 1, MAX_ARM_HIDDEN)
        within("ARM depth", self.arm_depth, 1, MAX_ARM_DEPTH)
        within("synthesis width", self.synth_hidden, 1, MAX_SYNTH_HIDDEN)
        within("synthesis depth", self.synth_depth, 1, MAX_SYNTH_DEPTH)
        within("refinement layers", self.refine, 0, MAX_REFINE)
        if self.channels not in (1, 3):
            raise HeaderError(f"corrupt fitted header: {self.channels} colour channels (must be 1 or 3)")

    def check(self) -> None:
        self.check_sizes()
        n = len(self.tensor_shapes())
        if len(self.exponents) != n or len(self.tables) != n:
            raise HeaderError("corrupt fitted header: parameter coding does not match the networks")
        for e in self.exponents:
            within("parameter exponent", e, 0, MAX_EXPONENT)
        for t in self.tables:
            within("parameter table", t, 0, SCALE_LEVELS - 1)
        arm = self.exponents[:self.arm_tensors()]
        if arm[0::2] != arm[1::2]:
            raise HeaderError("corrupt fitted header: an ARM layer's weight and bias have different steps")

    def pack(self) -> bytes:
        self.check()
        out = bytearray([self.version, self.levels, self.arm_hidden, self.arm_depth, self.synth_hidden,
                         self.synth_depth, self.refine, self.channels])
        for e, t in zip(self.exponents, self.tables):
            out += bytes([e, t])
        return bytes(out)


def unpack(data: bytes) -> Structure:
    """Parse and check a structure record; HeaderError (one line) for anything malformed."""
    if len(data) < FIXED_SIZE:
        raise HeaderError("corrupt fitted header: truncated")
    if data[0] not in VERSIONS:
        raise HeaderError(f"unsupported fitted codec version {data[0]}")
    levels, ah, ad, sh, sd, refine, channels = data[1:FIXED_SIZE]
    s = Structure(levels, ah, ad, sh, sd, refine, channels, version=data[0])
    s.check_sizes()  # sizes first, then the per-tensor bytes they imply
    n = len(s.tensor_shapes())
    if len(data) != FIXED_SIZE + 2 * n:
        raise HeaderError(f"corrupt fitted header: {len(data)} bytes, but its networks need {FIXED_SIZE + 2 * n}")
    body = data[FIXED_SIZE:]
    s = Structure(levels, ah, ad, sh, sd, refine, channels, tuple(body[0::2]), tuple(body[1::2]), data[0])
    s.check()
    return s


def mean_steps(version: int) -> int:
    """The ARM's means are coded in steps of 1/mean_steps (laplace.py): quarters up to version 2,
    sixteenths from version 3."""
    return 4 if version < 3 else 16


def plane_sizes(width: int, height: int, levels: int) -> list[tuple[int, int]]:
    """(height, width) of each latent plane, finest first: ceil(size / 2**k)."""
    return [(-(-height // (1 << k)), -(-width // (1 << k))) for k in range(levels)]


def describe(s: Structure, width: int, height: int) -> dict:
    """A JSON-ready summary for `aecli info`."""
    latents = sum(h * w for h, w in plane_sizes(width, height, s.levels))
    synth_macs = sum(a * b for a, b in zip(s.synth_dims()[:-1], s.synth_dims()[1:])) + 9 * s.channels ** 2 * s.refine
    arm_macs = sum(a * b for a, b in zip(s.arm_dims()[:-1], s.arm_dims()[1:]))
    return {
        "structure_version": s.version, "structure": VERSION_NOTES[s.version],
        "levels": s.levels, "latents": latents, "parameters": s.parameter_count(),
        "arm": "x".join(map(str, s.arm_dims())), "synthesis": "x".join(map(str, s.synth_dims())) + f" + {s.refine} 3x3",
        "decode_macs_per_pixel": round(synth_macs + arm_macs * latents / (width * height)),
    }
