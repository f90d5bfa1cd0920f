"""Regenerate the bundled sample dataset (src/elspeth/_data/service_requests.csv).

The rows are synthetic, written from templates with a fixed seed, so the file is reproducible and
contains no real person's data. Run: python scripts/make_sample_data.py
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "src" / "elspeth" / "_data" / "service_requests.csv"
ROWS = 300

REGIONS = ["North", "South", "East", "West", "Central", "Coastal"]
CHANNELS = ["web", "phone", "email", "counter"]

# (service area, urgency, message template); {place} and {days} are filled per row.
TEMPLATES: list[tuple[str, str, str]] = [
    (
        "housing",
        "high",
        "Water is coming through the ceiling of our flat near {place} and the "
        "electrics have tripped twice. We have two small children at home.",
    ),
    (
        "housing",
        "medium",
        "The heating in our block at {place} has been off for {days} days. "
        "Please send someone to look at the boiler.",
    ),
    ("housing", "low", "Could you confirm when the communal hallway at {place} will be repainted?"),
    (
        "transport",
        "high",
        "A traffic light at the {place} junction is stuck on green both ways; "
        "there was nearly a collision this morning.",
    ),
    (
        "transport",
        "medium",
        "The bus shelter on {place} Road has a smashed panel and broken glass on the pavement.",
    ),
    (
        "transport",
        "low",
        "Please consider adding a cycle rack outside the library on {place} Street.",
    ),
    (
        "benefits",
        "high",
        "My payment has not arrived for {days} days and I cannot buy food or "
        "pay for my medication.",
    ),
    (
        "benefits",
        "medium",
        "I sent the form about my change of address {days} days ago and have heard nothing back.",
    ),
    ("benefits", "low", "Which documents do I need to bring to the appointment next month?"),
    (
        "licensing",
        "medium",
        "Our market stall licence for {place} expires in {days} days and the "
        "renewal page shows an error.",
    ),
    ("licensing", "low", "Is a licence needed for a small street party on {place} Close?"),
    (
        "waste",
        "high",
        "Someone has dumped drums that smell of chemicals behind the shops at "
        "{place}; children play there.",
    ),
    (
        "waste",
        "medium",
        "Our bins at {place} have not been collected for {days} days and are overflowing.",
    ),
    ("waste", "low", "Can I order an extra recycling box for the house on {place} Lane?"),
]
PLACES = [
    "Millbrook",
    "Ashford Park",
    "Kingsway",
    "Riverside",
    "Elm Grove",
    "Harbour View",
    "Station",
    "Oakfield",
    "Beacon Hill",
    "Willow",
    "Castle",
    "Meadowbank",
]


def main() -> None:
    rng = random.Random(20261128)  # noqa: S311 -- reproducible synthetic data, not a secret
    start = dt.date(2026, 1, 5)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with OUTPUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["request_id", "received_on", "channel", "region", "service_area", "message", "urgency"]
        )
        for index in range(ROWS):
            area, urgency, template = rng.choice(TEMPLATES)
            message = template.format(place=rng.choice(PLACES), days=rng.randint(2, 21))
            received = start + dt.timedelta(days=rng.randint(0, 300))
            writer.writerow(
                [
                    f"SR-{10001 + index}",
                    received.isoformat(),
                    rng.choice(CHANNELS),
                    rng.choice(REGIONS),
                    area,
                    message,
                    urgency,
                ]
            )


if __name__ == "__main__":
    main()
