"""The training loop: ROI objective, two optimizers, checkpoints, validation logs.

Imports torch, anoncodec.codec, anoncodec.roi and anoncodec.data.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, WeightedRandomSampler

from anoncodec.codec import RoiCodec, get_model, load_checkpoint, save_checkpoint
from anoncodec.codec.gate import dilate
from anoncodec.config import CodecConfig, TrainConfig, lr_factor
from anoncodec.data import RoiCropDataset, collate_roi, load_source, split_items
from anoncodec.errors import ConfigError, DatasetError
from anoncodec.packet import pack
from anoncodec.roi.loss import RoiObjective, head_cells
from anoncodec.roi.metrics import region_metrics
from anoncodec.training.optim import make_optimizers

__all__ = ["train", "TrainResult", "resolve_device"]

logger = logging.getLogger(__name__)

VAL_COLUMNS = ["step", "wall_s", "bpp", "bpp_estimated", "psnr", "psnr_outside_heads", "mse_inside_heads", "loss",
               "gate_recall", "gate_false_alarm"]


@dataclass
class TrainResult:
    """Where a run left its files and its last validation."""

    checkpoint: Path
    steps: int
    wall_s: float
    validation: dict[str, float]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _build_datasets(cfg: TrainConfig, cache_dir: Path | None):
    train_sets, weights, val_items = [], [], []
    for src in cfg.data:
        items = load_source(src, cache_dir=cache_dir)
        if not items:
            raise DatasetError(f"data source {src.path!r} ({src.kind}) yielded no images")
        if any(it.split for it in items):  # the source fixes the split (by identity and scene)
            if any(it.split == "test" for it in items):
                raise DatasetError(f"data source {src.path!r} hands test images to training")
            tr = [it for it in items if it.split == "train"]
            va = [it for it in items if it.split == "val"]
        else:
            tr, va = split_items(items, src.val_fraction, seed=cfg.seed)
        logger.info("source %s: %d train / %d val images", src.path, len(tr), len(va))
        ds = RoiCropDataset(tr, cfg.crop_size, cfg.scale_min, cfg.scale_max, train=True, seed=cfg.seed)
        train_sets.append(ds)
        weights += [src.weight / len(tr)] * len(tr)
        val_items += va
    if not train_sets:
        raise ConfigError("the config has no [[data]] sources")
    # Spread the validation budget over sources deterministically.
    rng = random.Random(cfg.seed)
    val_items = sorted(val_items, key=lambda it: it.id)
    rng.shuffle(val_items)
    val = RoiCropDataset(val_items[: cfg.val_images], cfg.crop_size, 1.0, 1.0, train=False, seed=cfg.seed)
    return ConcatDataset(train_sets), torch.tensor(weights, dtype=torch.double), val


def _batches(dataset, weights, cfg: TrainConfig, generator: torch.Generator) -> Iterator:
    # An "epoch" of a few hundred batches: the sampler draws all its indices up front.
    epoch = cfg.batch_size * min(cfg.steps, 500)
    sampler = WeightedRandomSampler(weights, num_samples=epoch, replacement=True, generator=generator)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate_roi,
                        num_workers=cfg.num_workers, drop_last=True,
                        persistent_workers=cfg.num_workers > 0)
    while True:
        yield from loader


def _init_weights(model: RoiCodec, init: dict, cfg: TrainConfig) -> None:
    """Load ``init_from``'s weights; a codec without a gate may seed a gated one (the gate
    starts from scratch), nothing else may differ."""
    source = CodecConfig.from_dict(init["codec"])
    if source == cfg.codec:
        model.load_state_dict(init["state_dict"])
        return
    if source.gate_channels or source != cfg.codec.without_gate():
        raise ConfigError(f"init_from {cfg.init_from} has codec {init['codec']}, the config "
                          f"asks for {cfg.codec.to_dict()}")
    missing, unexpected = model.load_state_dict(init["state_dict"], strict=False)
    if unexpected or any(not k.startswith("head_gate.") for k in missing):
        raise ConfigError(f"init_from {cfg.init_from}: unexpected {unexpected}, missing {missing}")


def _latent_head_cells(model: RoiCodec, x: torch.Tensor, heads: list[torch.Tensor]) -> torch.Tensor:
    """bool ``[B, h, w]``: the latent cells of the (padded) batch ``x`` under its heads."""
    f = model.downsampling
    return head_cells(heads, (-(-x.shape[-2] // f), -(-x.shape[-1] // f)), f)


def _gate_target(model: RoiCodec, x: torch.Tensor, heads: list[torch.Tensor]) -> dict:
    """``forward``'s ``gate_target`` (the cells under known heads) for a gated codec."""
    if getattr(model, "head_gate", None) is None:
        return {}
    return {"gate_target": _latent_head_cells(model, x, heads).to(x.device)}


def _erase_target(model: RoiCodec, x: torch.Tensor, heads: list[torch.Tensor], cfg: TrainConfig) -> dict:
    """``forward``'s ``erase``: the heads of a random ``cfg.erase_heads`` share of the batch,
    grown by ``cfg.erase_margin`` cells, as the guard erases them on the camera."""
    if cfg.erase_heads <= 0:
        return {}
    cells = _latent_head_cells(model, x, heads)
    chosen = torch.rand(len(heads)) < cfg.erase_heads
    cells[~chosen] = False
    return {"erase": dilate(cells, cfg.erase_margin).to(x.device)}


def _gate_metrics(out: dict, heads: torch.Tensor, factor: int) -> dict[str, float]:
    """Share of the cells under heads the gate erased, and of the other cells."""
    if "gate_mask" not in out:
        return {}
    mask = out["gate_mask"][0].cpu()
    target = head_cells([heads], (int(mask.shape[-2]), int(mask.shape[-1])), factor)[0]
    recall = float(mask[target].float().mean()) if target.any() else float("nan")
    false_alarm = float(mask[~target].float().mean()) if (~target).any() else float("nan")
    return {"gate_recall": recall, "gate_false_alarm": false_alarm}


@contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C (a last checkpoint is written); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@torch.no_grad()
def validate(model: RoiCodec, val_set, objective: RoiObjective, device: torch.device) -> dict[str, float]:
    """Real bpp (entropy-coded packets), PSNR, PSNR outside heads, MSE inside heads."""
    if len(val_set) == 0:
        return {}
    was_training = model.training
    model.eval()
    model.update(force=True)
    rows = []
    for i in range(len(val_set)):
        x, persons, heads = val_set[i]
        xb = x[None].to(device)
        out = model(xb)
        terms = objective(out["x_hat"], xb, out["likelihoods"], [persons.to(device)], [heads.to(device)],
                          y=out.get("y"), medians=out.get("medians"), gate_logits=out.get("gate_logits"))
        packet = model.compress(xb)
        pixels = x.shape[-1] * x.shape[-2]
        x_hat = model.decompress(packet).clamp(0, 1).cpu()
        reg = region_metrics(x_hat, x[None], [heads])
        mse = float(torch.mean((x_hat - x[None]) ** 2))
        rows.append({
            "bpp": 8 * len(pack(packet)) / pixels,
            "bpp_estimated": float(terms.bpp),
            "psnr": 10 * math.log10(1 / max(mse, 1e-12)),
            "loss": float(terms.loss),
            **reg,
            **_gate_metrics(out, heads, model.downsampling),
        })
    model.train(was_training)
    result = {}
    for key in rows[0]:
        values = [r[key] for r in rows if not math.isnan(r.get(key, float("nan")))]
        result[key] = sum(values) / len(values) if values else float("nan")
    return result


def train(cfg: TrainConfig, resume: bool = False, cache_dir: Path | None = None,
          progress: bool = True, tensorboard: bool = True) -> TrainResult:
    """Run (or resume) a training run; writes ``last.pt``, ``val.csv`` and TensorBoard logs.

    Args:
        cfg: the run's configuration (paths already resolved).
        resume: continue from ``<out_dir>/last.pt`` when it exists.
        cache_dir: where auto-annotated footage is cached (default: the user cache).
        progress: show a tqdm progress bar.
        tensorboard: also log scalars for TensorBoard under ``<out_dir>/tb``.
    """
    from tqdm.auto import tqdm

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)

    model = get_model(cfg.codec).to(device)
    if cfg.quantization == "mixed":
        if not hasattr(model, "mixed_quantization"):
            raise ConfigError(f"quantization='mixed' is not implemented for {cfg.codec.architecture!r}")
        model.mixed_quantization = True
    net_opt, aux_opt = make_optimizers(model, cfg.lr, cfg.aux_lr)
    objective = RoiObjective(cfg.loss, factor=cfg.codec.downsampling)
    step, wall_before = 0, 0.0
    if resume and last.is_file():
        ckpt = load_checkpoint(last)
        if ckpt["codec"] != cfg.codec.to_dict():
            raise ConfigError(f"{last} was trained with codec {ckpt['codec']}, the config asks for "
                              f"{cfg.codec.to_dict()}; use another out_dir or drop --resume")
        model.load_state_dict(ckpt["state_dict"])
        state = ckpt["train"]
        net_opt.load_state_dict(state["net_optimizer"])
        aux_opt.load_state_dict(state["aux_optimizer"])
        step, wall_before = state["step"], state.get("wall_s", 0.0)
        _set_rng_state(state["rng"])
        logger.info("resumed from %s at step %d", last, step)
    else:
        if resume:
            logger.warning("--resume given but %s does not exist; starting from scratch", last)
        if cfg.init_from:
            init = load_checkpoint(cfg.init_from)
            _init_weights(model, init, cfg)
            logger.info("weights from %s", cfg.init_from)

    train_set, weights, val_set = _build_datasets(cfg, cache_dir)
    generator = torch.Generator().manual_seed(cfg.seed + step)
    batches = _batches(train_set, weights, cfg, generator)

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    csv_path = out / "val.csv"
    if not csv_path.exists() or step == 0:
        with csv_path.open("w", newline="") as f:
            csv.writer(f).writerow(VAL_COLUMNS)

    t0 = time.monotonic()
    validation: dict[str, float] = {}

    def wall() -> float:
        return wall_before + time.monotonic() - t0

    def checkpoint() -> None:
        save_checkpoint(last, model, meta={"step": step, "wall_s": wall(), "validation": validation},
                        train={"net_optimizer": net_opt.state_dict(), "aux_optimizer": aux_opt.state_dict(),
                               "step": step, "wall_s": wall(), "rng": _rng_state(),
                               "config": cfg.to_dict()})

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", dynamic_ncols=True)
    with _sigterm_as_interrupt():
        try:
            while step < cfg.steps:
                for group in net_opt.param_groups:
                    group["lr"] = cfg.lr * lr_factor(cfg, step)
                x, persons, heads = next(batches)
                x = x.to(device)
                persons = [p.to(device) for p in persons]
                heads = [h.to(device) for h in heads]
                out_ = model(x, **_gate_target(model, x, heads), **_erase_target(model, x, heads, cfg))
                terms = objective(out_["x_hat"], x, out_["likelihoods"], persons, heads,
                                  y=out_.get("y"), medians=out_.get("medians"),
                                  gate_logits=out_.get("gate_logits"))
                net_opt.zero_grad(set_to_none=True)
                terms.loss.backward()
                if cfg.clip_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                net_opt.step()
                aux_loss = model.aux_loss() * cfg.loss.aux_weight
                aux_opt.zero_grad(set_to_none=True)
                aux_loss.backward()
                aux_opt.step()
                step += 1
                logs = {"loss": terms.loss.item(), "mse": terms.mse.item(), "bpp": terms.bpp.item(),
                        "person": terms.person_roi.item(), "head": terms.head_roi.item(),
                        "head_bits": terms.head_bits.item(), "head_median": terms.head_median.item(),
                        "gate": terms.gate.item(), "aux": aux_loss.item()}
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
                if writer is not None and step % 10 == 0:
                    for k, v in logs.items():
                        writer.add_scalar(f"train/{k}", v, step)
                if step % cfg.val_every == 0 or step == cfg.steps:
                    validation = validate(model, val_set, objective, device)
                    with csv_path.open("a", newline="") as f:
                        csv.writer(f).writerow([step, f"{wall():.1f}"] + [f"{validation.get(c, float('nan')):.6g}"
                                                                         for c in VAL_COLUMNS[2:]])
                    if writer is not None:
                        for k, v in validation.items():
                            writer.add_scalar(f"val/{k}", v, step)
                    logger.info("step %d validation %s", step, validation)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint()
        except KeyboardInterrupt:
            logger.warning("interrupted at step %d; saving %s", step, last)
            checkpoint()
            raise
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    return TrainResult(checkpoint=last, steps=step, wall_s=wall(), validation=validation)
