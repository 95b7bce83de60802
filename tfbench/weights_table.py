"""The registered files tfbench uses from outside: `WeightSpec`, one entry's description, and `ENTRIES`.

`tfbench.weights` registers every entry of `ENTRIES` in its `WEIGHTS` registry and does the fetching,
resolving and checking; this module is only the data, so the table can grow without the logic moving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["ENTRIES", "WeightSpec"]


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable file: where it comes from, what it must hash to, and where loaders expect it.

    `source` is an http(s):// or file:// URL, `gdrive:<file id>` (fetched with gdown), with `manual=True` a
    page to download the file from by hand (a Google Drive folder, which gdown cannot fetch as one file), or
    `package://<package>/<path>`: a file shipped inside an installed Python package (the demo weights), read
    in place, never downloaded, and so required to carry a full sha256.
    `sha256_prefix` is the short hash torch hub file names carry. `location` "torch_hub" means
    torch.hub.get_dir()/checkpoints, where pytorch-fid, torchvision and face_alignment look for their files.
    """

    name: str
    description: str
    source: str
    filename: str
    format: str
    licence: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    location: Literal["home", "torch_hub"] = "home"
    manual: bool = False
    note: str = ""  # where the hash and size come from

    def __post_init__(self) -> None:
        full, prefix = self.sha256 or "", self.sha256_prefix or ""
        checks = {
            "sha256 must be 64 lower-case hex digits": re.fullmatch(r"[0-9a-f]{64}", full or "0" * 64),
            "sha256_prefix must be lower-case hex": re.fullmatch(r"[0-9a-f]+", prefix or "0"),
            "sha256_prefix must match sha256": full.startswith(prefix) or not full,
            "location must be home or torch_hub": self.location in ("home", "torch_hub"),
            "filename must be a plain file name": re.fullmatch(r"[^/\\.][^/\\]*", self.filename),
            "source must be a URL, gdrive:<id> or package://<package>/<path>": re.match(
                r"(https?|file)://|gdrive:|package://[A-Za-z_]\w*/[^/]", self.source
            ),
            "a package:// file needs a full sha256": full or not self.packaged,
            "a package:// source must end with the filename": self.source.endswith("/" + self.filename)
            or not self.packaged,
        }
        if problems := [message for message, ok in checks.items() if not ok]:
            raise ValueError(f"weights entry {self.name!r}: {'; '.join(problems)}")

    @property
    def packaged(self) -> bool:
        """True for a file shipped inside a Python package (`package://`), which `fetch` never downloads."""
        return self.source.startswith("package://")

    def package_file(self) -> tuple[str, str]:
        """(package, path inside it) of a `package://` source."""
        package, _, inside = self.source.removeprefix("package://").partition("/")
        return package, inside


# Weights: sha256 and size from the Git LFS pointers of agreeing Hugging Face mirrors (named in `note`), and
# torch hub names carry the hash's prefix. Pair lists: the git blobs at Rudrabha/Wav2Lip master (since 2020).
_OXFORD = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"
_DRIVE = "https://drive.google.com/drive/folders/"
_W2L_LISTS = "https://raw.githubusercontent.com/Rudrabha/Wav2Lip/master/evaluation/test_filelists/"
_W2L_FORMAT = "wav2lip checkpoint dict ('state_dict', keys may carry 'module.')"
_W2L_LICENCE = "Wav2Lip: personal/research/non-commercial use only (its README); trained on LRS2"
_MIT = "MIT (syncnet_python repository)"
_BBC = "Copyright BBC: non-commercial research under a BBC LRS/LRW agreement; fetched, never shipped"
_TED = "LRS3-TED dataset terms (non-commercial research); fetched, never shipped"
_LOCAL = "trained locally; the training data's licence applies"
_DEMO = "package://tfbench/models/demo/"
_DEMO_LICENCE = "tfbench's licence (trained on tfbench's own synthetic data); shipped with the package"
_DEMO_NOTE = "made by the commands in tfbench/models/demo/README.md"

# fmt: off
ENTRIES: tuple[WeightSpec, ...] = (
    WeightSpec(
        "syncnet_v2", "syncnet_python SyncNet S, the LSE-D / LSE-C scorer", _OXFORD + "syncnet_v2.model",
        "syncnet_v2.model", "torch state_dict of S (netcnnaud, netfcaud, netcnnlip, netfclip)", _MIT,
        sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442", size=54573114,
        note="HF mirrors: lithiumice/syncnet, chunyu-li/LatentSync, Hyathi/Preprocess",
    ),
    WeightSpec(
        "s3fd", "S3FD face detector of syncnet_python's pipeline", _OXFORD + "sfd_face.pth",
        "sfd_face.pth", "torch state_dict (S3FD)", _MIT,
        sha256="d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491", size=89844381,
        note="HF mirrors: lithiumice/syncnet, Hyathi/Preprocess",
    ),
    WeightSpec(
        "s3fd_fan", "S3FD face detector of face_alignment, used by Wav2Lip",
        "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
        "s3fd-619a316812.pth", "torch state_dict (S3FD, face_alignment)", "BSD-3-Clause (face_alignment)",
        sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543", sha256_prefix="619a316812",
        size=89843225, location="torch_hub", note="HF mirrors: camenduru/Wav2Lip, chunyu-li/face-alignment",
    ),
    WeightSpec(
        "wav2lip", "Wav2Lip generator (no visual-quality GAN)", _DRIVE + "153HLrqlBNxzZcHi17PEvP09kkAfzRshM",
        "wav2lip.pth", _W2L_FORMAT, _W2L_LICENCE, manual=True,
        sha256="b78b681b68ad9fe6c6fb1debc6ff43ad05834a8af8a62ffc4167b7b34ef63c37", size=435807851,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository; also in the wav2lip_syncnet folder",
    ),
    WeightSpec(
        "wav2lip_gan", "Wav2Lip generator trained with the visual-quality GAN",
        "gdrive:15G3U08c8xsCkOqQxE38Z2XXDnPcOptNk", "wav2lip_gan.pth", _W2L_FORMAT, _W2L_LICENCE,
        sha256="ca9ab7b7b812c0e80a6e70a5977c545a1e8a365a6c49d5e533023c034d7ac3d8", size=435801865,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository, anon4ik/hjkh",
    ),
    WeightSpec(
        "wav2lip_syncnet", "Wav2Lip's expert lip-sync discriminator",
        _DRIVE + "1I-0dNLfFOSFwrfqjNa-SXuwaURHE5K4k", "lipsync_expert.pth",
        "wav2lip checkpoint dict ('state_dict' of the expert SyncNet)", _W2L_LICENCE, manual=True,
        sha256="9b9936c721696446eeed353032cab242a8cf0eed8c46cde540366f6ae5493be5", size=197357631,
        note="HF mirrors: Nekochu/Wav2Lip, steinhaug/cache-repository, Kedreamix/Linly-Talker",
    ),
    WeightSpec(
        "fid_inception", "pytorch-fid's InceptionV3 (FID features)",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "pt_inception-2015-12-05-6726825d.pth", "torch state_dict (pytorch-fid FIDInceptionV3)",
        "Apache-2.0 (pytorch-fid; ported from TensorFlow's 2015-12-05 Inception)",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", sha256_prefix="6726825d",
        size=95628359, location="torch_hub", note="HF mirror: RaphaelLiu/EvalCrafter-Models commit 6040b4d",
    ),
    WeightSpec(
        "lpips_alex", "torchvision AlexNet, the LPIPS v0.1 backbone (lpips ships its own linear heads)",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "alexnet-owt-7be5be79.pth",
        "torch state_dict (torchvision AlexNet IMAGENET1K_V1)", "BSD-3-Clause (torchvision), ImageNet",
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", sha256_prefix="7be5be79",
        location="torch_hub", note="HF mirrors: blanchon/image-gs-models-utils, CSWRY/VOSR; about 244 MB",
    ),
    WeightSpec("ours", "the paper's G_S + G_L from `tfbench train generator` (no public checkpoint exists)",
               "file://OUT/last.pt", "ours_generator.pt", "tfbench training checkpoint (stage 'generator')",
               _LOCAL, manual=True),
    WeightSpec("avsyncnet", "the paper's AVSyncNet from `tfbench train avsyncnet` (no public checkpoint "
               "exists); the `avsync` metric's scorer", "file://OUT/last.pt", "avsyncnet.pt",
               "tfbench training checkpoint (stage 'avsyncnet')", _LOCAL, manual=True),
    WeightSpec("ours_demo", "synthetic-data demo weights of `ours` (tiny G_S + G_L trained for minutes on "
               "`tfbench synth` clips): for `make demo` and smoke tests, says nothing about the paper",
               _DEMO + "ours_demo.pt", "ours_demo.pt", "tfbench exported checkpoint (stage 'generator')",
               _DEMO_LICENCE, sha256="c66683e1bbfdefbc8c926298bdceb5bb2b8bba08d8b46ec642d9a55a1f1f7cfd",
               size=5387679, note=_DEMO_NOTE),
    WeightSpec("avsyncnet_demo", "synthetic-data demo weights of AVSyncNet (tiny, trained for minutes on "
               "`tfbench synth` clips): for `make demo` and smoke tests, says nothing about the paper",
               _DEMO + "avsyncnet_demo.pt", "avsyncnet_demo.pt",
               "tfbench exported checkpoint (stage 'avsyncnet')", _DEMO_LICENCE,
               sha256="78cacb87b2351c17e55a4045c1ac8c175bddf4860eeb40b51bcb7ccaa3518bd8", size=1213684,
               note=_DEMO_NOTE),
    WeightSpec(
        "vgg19", "torchvision VGG19, the perceptual-loss backbone for training the paper's generators",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth",
        "torch state_dict (torchvision VGG19 IMAGENET1K_V1; features.* used)", "BSD-3-Clause, ImageNet",
        sha256_prefix="dcbb9e9d", location="torch_hub", note="about 548 MB; sha256 pinned on first download",
    ),
    *(
        WeightSpec(
            f"{data}_pairs", f"Wav2Lip's {data.upper()} test pairs for dubbing evaluation ({lines} lines)",
            f"{_W2L_LISTS}{data}.txt", f"{data}_test_pairs.txt", "text list: 'audioClip videoClip' per line",
            licence, sha256=sha, size=size, note="git blob at Rudrabha/Wav2Lip master",
        )
        for data, lines, size, licence, sha in (
            ("lrs2", 14239, 740428, _BBC, "c57815f5579e1ecf7a345c30f43197dc7afa983e151af650b4b5bcf107648fd8"),
            ("lrs3", 14000, 504000, _TED, "a58e9dd8d77e4f9601475ead1ee5a5be001528a259c815a5a2146001d2a8f472"),
            ("lrw", 28000, 760931, _BBC, "391ab03e8486d2c25afd84c97f7a0017cffc7a192d0aa46b4dcbcb43dd74a254"),
        )
    ),
)
# fmt: on
