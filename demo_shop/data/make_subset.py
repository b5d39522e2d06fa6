"""Make the demo shop's compact Online Retail subset from the full file.

Run from the repository root:

    python demo_shop/data/make_subset.py [--source PATH] [--out PATH]

Deterministic: customers and guest invoices are chosen by the SHA-256 of their id, not at random, and the
gzip header carries no timestamp, so the same source always gives the same bytes. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
from collections import defaultdict
from pathlib import Path

SOURCE = Path("/work/shared/data/online-retail-dev/online_retail_before_2011-10-01.csv.gz")
OUT = Path(__file__).resolve().parent / "online_retail_subset.csv.gz"
CUSTOMERS = 800
GUEST_INVOICES = 40
PRODUCTS = 2000
# The customer behind the documented `demo` login (see load_demo_data); always kept.
DEMO_CUSTOMER = "13694"


def _rank(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _customer(raw: str) -> str:
    # CustomerID is written as a float ("17850.0").
    return raw.split(".", 1)[0].strip()


def make_subset(source: Path, out: Path) -> dict[str, int]:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    col = {name: i for i, name in enumerate(header)}
    inv, code, cust = col["InvoiceNo"], col["StockCode"], col["CustomerID"]
    qty, price = col["Quantity"], col["UnitPrice"]

    customers = sorted({_customer(r[cust]) for r in rows} - {""}, key=_rank)[:CUSTOMERS]
    chosen_customers = {*customers, DEMO_CUSTOMER}
    # Most guest invoices are cancellations or stock adjustments (no customer, price 0): take real sales.
    guest_sales = {
        r[inv]
        for r in rows
        if not _customer(r[cust]) and r[inv][:1].isdigit() and int(r[qty]) > 0 and float(r[price]) > 0
    }
    guest_invoices = sorted(guest_sales, key=_rank)[:GUEST_INVOICES]
    chosen_guests = set(guest_invoices)
    candidates = [r for r in rows if _customer(r[cust]) in chosen_customers or r[inv] in chosen_guests]

    # Keep the products most of the chosen shoppers bought, so the catalogue stays small but dense.
    buyers: dict[str, set[str]] = defaultdict(set)
    for r in candidates:
        if r[code][:1].isdigit():
            buyers[r[code]].add(_customer(r[cust]) or r[inv])
    kept_products = set(sorted(buyers, key=lambda c: (-len(buyers[c]), c))[:PRODUCTS])
    # Non-product codes (POST, DOT, ...) stay in so the loader's filters are exercised on the shipped file.
    subset = [r for r in candidates if r[code] in kept_products or not r[code][:1].isdigit()]

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(subset)
    out.write_bytes(gzip.compress(text.getvalue().encode("utf-8"), compresslevel=9, mtime=0))
    return {
        "source_rows": len(rows),
        "rows": len(subset),
        "customers": len(chosen_customers),
        "guest_invoices": len(chosen_guests),
        "products": len(kept_products),
        "dropped_rows_of_other_products": len(candidates) - len(subset),
        "bytes": out.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for key, value in make_subset(args.source, args.out).items():
        print(f"{key}: {value:,}")


if __name__ == "__main__":
    main()
