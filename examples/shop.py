"""The example app: two real jobs from a shop's backend.

- `send_welcome` renders a welcome e-mail and writes it to ./outbox (no SMTP needed);
- `make_thumbnails` resizes an image into three sizes with Pillow.

Run it with `make run` (or `sluice dev shop:app` from this folder), then submit work
with `python burst.py`.
"""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from pathlib import Path
from string import Template

from PIL import Image

import sluice

app = sluice.App("shop")
log = logging.getLogger("shop")

HERE = Path(__file__).parent
OUTBOX = HERE / "outbox"
THUMBNAILS = HERE / "thumbnails"
SIZES = {"small": (64, 64), "medium": (256, 256), "large": (1024, 1024)}

WELCOME = Template(
    """Hello $name,

welcome to the shop! Your account $email is ready.

Your first order ships free: use the code WELCOME-$code at checkout.

-- The shop team
"""
)


@app.task(retry=sluice.RetryPolicy(max_attempts=5), timeout=30, priority=7)
def send_welcome(user_id: int, name: str, email: str) -> str:
    """Render the welcome e-mail and drop it in the outbox, one file per user.

    The file name is derived from the user, so a retry overwrites rather than duplicates.
    """
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = email
    message["Subject"] = f"Welcome, {name}!"
    message.set_content(WELCOME.substitute(name=name, email=email, code=f"{user_id:06d}"))
    OUTBOX.mkdir(exist_ok=True)
    path = OUTBOX / f"welcome-{user_id}.eml"
    path.write_bytes(bytes(message))
    log.info("wrote %s", path.name)
    return str(path)


@app.task(timeout=60)
def make_thumbnails(image_path: str) -> dict[str, list[int]]:
    """Write small, medium and large thumbnails of an image; returns their sizes."""
    source = Path(image_path)
    THUMBNAILS.mkdir(exist_ok=True)
    made = {}
    with Image.open(source) as image:
        image.load()
        for label, box in SIZES.items():
            thumb = image.copy()
            thumb.thumbnail(box, Image.Resampling.LANCZOS)
            target = THUMBNAILS / f"{source.stem}-{label}.jpg"
            thumb.convert("RGB").save(target, "JPEG", quality=85)
            made[label] = list(thumb.size)
    return made


@app.task
async def ping(started: float) -> float:
    """A no-op round trip: returns how long the task waited before starting."""
    return time.time() - started
