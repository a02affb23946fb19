"""``p2n``: generate a NeRF from a text or image prompt in one forward pass.

Examples::

    p2n generate --text "a brown table" --out table.gif
    p2n generate --image photo.png --out photo.gif --views 24
    p2n generate --text "a red jet" --out jet.gif --profile small --save-params jet.safetensors

The trained parts come from running the book (``make book``: notebooks 01–04) for the profile.
"""
from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="p2n", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="prompt -> NeRF -> turntable GIF",
                       description="Map a text or image prompt to NeRF parameters and render a turntable GIF.")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text prompt, mapped to the nearest training scene as in the paper")
    src.add_argument("--image", help="image prompt: a PNG/JPEG file (object on a white background)")
    g.add_argument("--out", required=True, help="output GIF path")
    g.add_argument("--profile", default=os.environ.get("P2N_PROFILE", "small"), help="tiny | small | paper")
    g.add_argument("--views", type=int, default=16, help="frames of the turntable (default 16)")
    g.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    g.add_argument("--seed", type=int, default=0, help="text prompts: which view of the chosen scene to embed")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--save-params", help="also write the NeRF parameters (.safetensors)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from p2nlib.core.errors import InputError, P2NError
    from p2nlib.core.profiles import get_profile
    from p2nlib.generate.pipeline import Prompt2NeRF, load_image  # imported late: --help stays fast

    try:
        if args.text is not None and not args.text.strip():
            raise InputError("the text prompt is empty; give a description such as --text \"a brown table\"")
        if args.views < 1 or args.size < 8:
            raise InputError("--views must be >= 1 and --size >= 8")
        if not args.out.lower().endswith(".gif"):
            raise InputError(f"--out {args.out} must end in .gif")
        get_profile(args.profile)
        if args.image is not None:
            load_image(args.image, 8)          # fail fast on a missing or unreadable file
        pipe = Prompt2NeRF.load(args.profile, args.device)
        gen = pipe.from_text(args.text, seed=args.seed) if args.text is not None else pipe.from_image(args.image)
        path = pipe.turntable_gif(gen, args.out, views=args.views, size=args.size)
        if args.save_params:
            from safetensors.torch import save_file

            save_file({k: v[0].contiguous().cpu() for k, v in gen.params.items()}, args.save_params)
    except P2NError as err:
        print(f"p2n: error: {err}", file=sys.stderr)
        return 2
    print(gen.describe())
    print(f"wrote {path} ({args.views} views, {args.size} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
