"""Submit a burst of work to the example app started by `make run`.

    python burst.py [--users 200] [--images 10]

It reads the server URL and API key that `sluice dev` saved in .sluice/dev.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image, ImageDraw
from shop import make_thumbnails, send_welcome

import sluice

IMAGES = Path(__file__).parent / "images"


def sample_images(count: int) -> list[Path]:
    """Make a few photo-sized images to shrink (gradients with shapes), once."""
    IMAGES.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = IMAGES / f"sample-{i}.png"
        if not path.exists():
            image = Image.new("RGB", (2400, 1600))
            draw = ImageDraw.Draw(image)
            for y in range(0, 1600, 8):
                draw.rectangle([0, y, 2400, y + 8], fill=(y % 256, (y * 3 + i * 40) % 256, 180))
            draw.ellipse([600 + i * 20, 300, 1800, 1300], outline=(255, 255, 255), width=12)
            image.save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--images", type=int, default=10)
    options = parser.parse_args()

    start = time.perf_counter()
    welcomes = send_welcome.submit_many(
        [
            sluice.Call(
                kwargs={"user_id": i, "name": f"User {i}", "email": f"user{i}@example.com"},
                key=f"welcome-{i}",  # one welcome per user, however often this runs
            )
            for i in range(options.users)
        ]
    )
    thumbs = make_thumbnails.submit_many([(str(p),) for p in sample_images(options.images)])
    print(f"submitted {len(welcomes)} welcome e-mails and {len(thumbs)} thumbnail jobs "
          f"in {time.perf_counter() - start:.2f}s")  # fmt: skip

    print("thumbnails of the first image:", thumbs[0].result(timeout=60))
    print("last welcome e-mail written to:", welcomes[-1].result(timeout=60))
    for handle in [*thumbs, *welcomes]:  # tasks run in any order: wait for every one
        handle.result(timeout=60)
    print(f"all done in {time.perf_counter() - start:.2f}s; see examples/outbox and thumbnails/")


if __name__ == "__main__":
    main()
