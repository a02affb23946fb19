"""``p2n``: generate a NeRF from a text or image prompt in one forward pass; write it as a turntable
GIF, a coloured mesh (.glb, .gltf, .ply, .obj) or its parameters (.safetensors).

Examples::

    p2n generate --text "a brown table" --out table.gif
    p2n generate --text "a brown table" --out table.glb --out table.gif --json
    p2n generate --image photo.png --out photo.gif --views 24
    p2n generate --text "a red jet" --out jet.ply --save-params jet.safetensors --threshold 15
    p2n export jet.safetensors --out jet.glb --resolution 96

The trained parts come from running the book (``make book``: notebooks 01-04) for the profile.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Kept equal to p2nlib.generate.mesh (a test checks): importing that module would import torch,
# and ``p2n --help`` should not wait for it.
MESH_SUFFIXES = (".glb", ".gltf", ".ply", ".obj")
DEFAULT_THRESHOLD = 22.0
DEFAULT_RESOLUTION = 64
MIN_RESOLUTION, MAX_RESOLUTION = 8, 512


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, action="append", metavar="PATH",
                   help="output file, by suffix: .gif (turntable) or .glb/.gltf/.ply/.obj (coloured mesh); "
                        "give --out several times for several files")
    p.add_argument("--threshold", type=float, default=None,
                   help="meshes: the NeRF density where the surface is drawn; lower = fuller, hazier (default: "
                        f"chosen from the NeRF, min({DEFAULT_THRESHOLD:g}, half its highest density): {DEFAULT_THRESHOLD:g} "
                        "is the best level measured against the ground truth on fitted NeRFs, and a faint NeRF gets "
                        "the half-maximum of its own density instead of no mesh; the output says which)")
    p.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION,
                   help=f"meshes: grid points per axis over the object box (default {DEFAULT_RESOLUTION})")
    p.add_argument("--views", type=int, default=16, help="GIF: frames of the turntable (default 16)")
    p.add_argument("--size", type=int, default=64, help="GIF: frame size in pixels (default 64)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: the models are small, and on a 2-core machine one "
                        "thread made prompt -> NeRF about 200x faster than two under load)")
    p.add_argument("--json", action="store_true", help="print a machine-readable description (JSON) instead of text")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="p2n", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="prompt -> NeRF -> turntable GIF and/or mesh",
                       description="Map a text or image prompt to NeRF parameters; write a turntable GIF, a mesh, "
                                   "or both.")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text prompt, mapped to the nearest training scene as in the paper")
    src.add_argument("--image", help="image prompt: a PNG/JPEG file (object on a white background), at least 16 px")
    g.add_argument("--profile", default=os.environ.get("P2N_PROFILE", "small"), help="tiny | small | gpu | paper")
    g.add_argument("--seed", type=int, default=0, help="text prompts: which view of the chosen scene to embed")
    g.add_argument("--save-params", metavar="PATH",
                   help="also write the NeRF parameters (.safetensors, with the NeRF spec in its metadata)")
    _output_options(g)
    e = sub.add_parser("export", help="saved NeRF parameters -> mesh and/or turntable GIF",
                       description="Convert a NeRF saved with --save-params (or one NeRF of a dataset's "
                                   "params.safetensors, with --index) to a mesh or a turntable GIF.")
    e.add_argument("params", help="NeRF parameters (.safetensors)")
    e.add_argument("--profile", default=None,
                   help="tiny | small | gpu | paper: the NeRF spec and samples per ray for files that do not record "
                        "them (default: what the file records, else $P2N_PROFILE or small)")
    e.add_argument("--index", type=int, default=None, help="which NeRF of a file that holds several")
    _output_options(e)
    return ap


def _check_outputs(args, InputError) -> list[Path]:
    outs = [Path(o) for o in args.out]
    for o in outs:
        if o.suffix.lower() not in (".gif", *MESH_SUFFIXES):
            raise InputError(f"--out {o} must end in .gif (turntable) or {', '.join(MESH_SUFFIXES)} (mesh)")
    if args.views < 1 or args.size < 8:
        raise InputError("--views must be >= 1 and --size >= 8")
    if args.threshold is not None and (not args.threshold > 0 or args.threshold == float("inf")):
        raise InputError(f"--threshold {args.threshold:g} is a density and must be a positive number "
                         f"(leave it out to have it chosen from the NeRF, min({DEFAULT_THRESHOLD:g}, half its highest "
                         "density); lower it for a fuller mesh, raise it for a tighter one)")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads} must be at least 1")
    if not MIN_RESOLUTION <= args.resolution <= MAX_RESOLUTION:
        raise InputError(f"--resolution {args.resolution} must be from {MIN_RESOLUTION} to {MAX_RESOLUTION} "
                         f"grid points per axis (default {DEFAULT_RESOLUTION})")
    return outs


def _write_outputs(outs, params, spec, samples, device, args, render, timings) -> tuple[dict, list[str], dict | None]:
    """Write every requested file; returns ``{path: kind}``, one line per file, and the mesh's level (density,
    how it was chosen, the NeRF's highest density) when a mesh was written."""
    done, lines, mesh_obj = {}, [], None
    for out in outs:
        if out.suffix.lower() == ".gif":
            t = time.perf_counter()
            from p2nlib.generate.pipeline import save_gif

            save_gif(render(args.views, args.size), out)
            timings["turntable"] = timings.get("turntable", 0.0) + time.perf_counter() - t
            done[str(out)] = "turntable"
            lines.append(f"wrote {out} ({args.views} views, {args.size} px)")
            continue
        from p2nlib.generate import mesh

        if mesh_obj is None:
            t = time.perf_counter()
            mesh_obj = mesh.extract_mesh(params, spec, resolution=args.resolution, threshold=args.threshold,
                                         device=device)
            timings["mesh"] = time.perf_counter() - t
        t = time.perf_counter()
        mesh.export_mesh(mesh_obj, out)
        timings["write_mesh"] = timings.get("write_mesh", 0.0) + time.perf_counter() - t
        done[str(out)] = "mesh"
        lines.append(f"wrote {out} (mesh: {len(mesh_obj.vertices)} vertices, {len(mesh_obj.faces)} triangles, "
                     f"watertight {mesh_obj.is_watertight}; {mesh_obj.metadata['threshold_rule']}, "
                     f"{args.resolution}^3 grid)")
    level = None if mesh_obj is None else {k: mesh_obj.metadata[k] for k in
                                           ("threshold_density", "threshold_rule", "peak_density")}
    return done, lines, level


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _timing_line(timings: dict) -> str:
    parts = []
    for key, label in (("imports", "imports"), ("import_open_clip", "importing open_clip"),
                       ("load", "loading the trained parts"), ("read", "reading"),
                       ("far_reference", "dataset caption cosines")):
        if key in timings:
            parts.append(f"{label} {timings[key]:.2f} s")
    if "prompt_to_params" in timings:
        warm = timings.get("prompt_to_params_warm")
        parts.append(f"prompt -> NeRF {1000 * timings['prompt_to_params']:.1f} ms first call"
                     + ("" if warm is None else f", {1000 * warm:.1f} ms warm"))
    for key, label in (("turntable", "turntable"), ("mesh", "mesh"), ("write_mesh", "writing meshes")):
        if key in timings:
            parts.append(f"{label} {timings[key]:.2f} s")
    parts.append(f"total {timings['total']:.2f} s")
    return "time: " + ", ".join(parts)


def _generate(args, t_start: float) -> int:
    import json
    import warnings

    from p2nlib.core.errors import InputError
    from p2nlib.core.profiles import get_profile

    if args.text is not None and not args.text.strip():
        raise InputError("the text prompt is empty; give a description such as --text \"a brown table\"")
    outs = _check_outputs(args, InputError)
    if args.save_params and not args.save_params.lower().endswith(".safetensors"):
        raise InputError(f"--save-params {args.save_params} must end in .safetensors")
    profile = get_profile(args.profile)
    timings: dict = {}
    t = time.perf_counter()
    from p2nlib.generate import pipeline   # torch and the trained parts' code: after the cheap checks

    timings["imports"] = time.perf_counter() - t
    _set_threads(args.threads)
    t = time.perf_counter()
    import open_clip  # noqa: F401  (every encoder is an open_clip model; timed apart from loading the weights)

    timings["import_open_clip"] = time.perf_counter() - t
    if args.image is not None:
        pipeline.load_image(args.image, 8)          # fail fast on a missing, unreadable or tiny file
    t = time.perf_counter()
    pipe = pipeline.Prompt2NeRF.load(profile, args.device)
    timings["load"] = time.perf_counter() - t
    if args.text is not None:
        t = time.perf_counter()
        pipe.far_cosine()                           # the dataset's caption-scene cosines, once per process
        timings["far_reference"] = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pipeline.PromptWarning)   # reported below, once
        gen = pipe.from_text(args.text, seed=args.seed) if args.text is not None else pipe.from_image(args.image)
    timings["prompt_to_params"], timings["prompt_to_params_warm"] = gen.seconds, gen.warm_seconds
    done, lines, level = _write_outputs(outs, gen.params, pipe.spec, profile.samples_per_ray, pipe.device, args,
                                        lambda views, size: pipe.render(gen, views, size), timings)
    if args.save_params:
        from p2nlib.generate import mesh

        mesh.save_nerf(gen.params, pipe.spec, args.save_params, profile=profile,
                       extra={"prompt": gen.prompt, "modality": gen.source})
        done[args.save_params] = "params"
        lines.append(f"wrote {args.save_params} (NeRF parameters, spec {pipe.spec.to_dict()})")
    timings["total"] = time.perf_counter() - t_start
    for w in gen.warnings:
        print(f"p2n: warning: {w}", file=sys.stderr)
    if args.json:
        info = pipeline.description(gen, outputs=done, timings={k: v for k, v in timings.items()
                                                                 if not k.startswith("prompt_to_params")})
        info["profile"] = profile.name
        info["mesh"] = level
        print(json.dumps(info, indent=1))
    else:
        print(gen.describe(with_warnings=False))
        print("\n".join(lines))
        print(_timing_line(timings))
    return 0


def _export(args, t_start: float) -> int:
    import json

    from p2nlib.core.errors import InputError
    from p2nlib.core.profiles import get_profile

    outs = _check_outputs(args, InputError)
    if args.profile is not None:
        get_profile(args.profile)
    timings: dict = {}
    t = time.perf_counter()
    from p2nlib.core.device import resolve_device
    from p2nlib.generate import mesh

    timings["imports"] = time.perf_counter() - t
    _set_threads(args.threads)
    t = time.perf_counter()
    params, spec, samples, meta = mesh.load_nerf(args.params, args.profile, args.index)
    device = resolve_device(args.device)
    params = {k: v.to(device) for k, v in params.items()}
    timings["read"] = time.perf_counter() - t

    def render(views, size):
        from p2nlib.data import cameras, fit

        return fit.render_nerfs(params, spec, cameras.turntable(views), size, samples)[0].cpu()

    done, lines, level = _write_outputs(outs, params, spec, samples, device, args, render, timings)
    timings["total"] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps({"params": str(args.params), "nerf_spec": spec.to_dict(), "samples_per_ray": samples,
                          "metadata": meta, "mesh": level, "resolution": args.resolution,
                          "timings": timings, "outputs": done}, indent=1))
    else:
        print(f"NeRF {args.params} ({spec.to_dict()}, {samples} samples per ray)")
        print("\n".join(lines))
        print(_timing_line(timings))
    return 0


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from p2nlib.core.errors import P2NError

    try:
        return _generate(args, t_start) if args.command == "generate" else _export(args, t_start)
    except P2NError as err:
        print(f"p2n: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
