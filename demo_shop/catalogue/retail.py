"""Read and clean the UCI Online Retail file into products, customers and orders (no database here).

The file's caveats are handled as its SOURCE.md lists them: CustomerID written as a float or empty (guest),
cancellations (InvoiceNo "C..."), stock adjustments (Quantity <= 0, UnitPrice 0), non-product codes, exact
duplicate rows, missing or varying Descriptions and trailing spaces.
"""

from __future__ import annotations

import csv
import gzip
import re
import statistics
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

SUBSET_PATH = Path(__file__).resolve().parent.parent / "data" / "online_retail_subset.csv.gz"
# The columns the loader reads (Country is not needed).
COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID")
# InvoiceDate is UK wall-clock time without a zone.
LONDON = ZoneInfo("Europe/London")
CENT = Decimal("0.01")

OTHER = "Other"
# First match wins, so specific themes (Christmas) come before generic objects (Home decor).
# A keyword ("|"-separated) matches a whole word or phrase of the upper-cased description.
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    ("Christmas", "CHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|SNOWFLAKE|SNOWMAN|BAUBLE|BAUBLES|NATIVITY"),
    ("Easter", "EASTER|BUNNY|BUNNIES|CHICK|CHICKS"),
    (
        "Candles & lights",
        "CANDLE|CANDLES|T-LIGHT|T-LIGHTS|TLIGHT|TEALIGHT|LANTERN|LANTERNS|LIGHT|LIGHTS|LAMP|NIGHTLIGHT|"
        "INCENSE|OIL BURNER|CANDLEHOLDER|CANDLESTICK|CANDLEPOT|TORCH|MATCHES",
    ),
    (
        "Jewellery & accessories",
        "NECKLACE|BRACELET|EARRINGS|RING|RINGS|CHARM|BEAD|BEADS|BEADED|BROOCH|DIAMANTE|HAIR|HAIRCLIP|"
        "HAIRBAND|HAIRSLIDE|PEARL|BANGLE|PENDANT|JEWELLERY|BLING|SCARF|UMBRELLA|KEYRING|GLOVES|"
        "SUNGLASSES|SLIPPERS",
    ),
    ("Bags", "BAG|BAGS|HANDBAG|PURSE|SHOPPER|TOTE|RUCKSACK|BACKPACK|WASHBAG|LUGGAGE|PASSPORT"),
    (
        "Paper & cards",
        "CARD|CARDS|WRAP|WRAPS|PAPER|NOTEBOOK|NOTEBOOKS|NOTEPAD|PEN|PENS|PENCIL|PENCILS|STICKERS|"
        "STICKER|ENVELOPE|ENVELOPES|TAPE|JOURNAL|DIARY|CALENDAR|BOOK|BOOKS|BOOKMARK|ERASER|RUBBER|"
        "STAMP|STAMPS|SKETCHBOOK|TAGS|GIFT TAG|RIBBON|RIBBONS|TISSUE|TISSUES|CRAYONS|CHALK|POSTCARD|"
        "STATIONERY|RULER|BADGES",
    ),
    (
        "Party & celebrations",
        "PARTY|BUNTING|BALLOON|BALLOONS|BIRTHDAY|NAPKINS|NAPKIN|STRAWS|BANNER|PICKS|GARLAND|WEDDING|"
        "CONFETTI|CASES",
    ),
    (
        "Tableware",
        "MUG|MUGS|CUP|CUPS|TEACUP|TEACUPS|SAUCER|PLATE|PLATES|BOWL|BOWLS|CUTLERY|DISH|JUG|BEAKER|"
        "TUMBLER|TUMBLERS|COASTER|COASTERS|PLACEMAT|PLACEMATS|GLASSES|TEAPOT|CAKESTAND|CAKE STAND|"
        "SPOON|SPOONS|FORK|CHOPSTICKS|PLATTER|EGG CUP|WINE|CHAMPAGNE|SUGAR|CREAMER|TRAY",
    ),
    (
        "Kitchen & baking",
        "KITCHEN|BAKING|BAKE|CAKE|CAKES|APRON|TEA TOWEL|TEA TOWELS|OVEN|GLOVE|JAR|JARS|TIN|TINS|"
        "LUNCH BOX|LUNCHBOX|PANTRY|RECIPE|COOKIE|CUTTER|CUTTERS|SCALES|JAM|JELLY|BISCUIT|BREAD|MOULD|"
        "MOULDS|WHISK|COLANDER|FOOD|CHOPPING BOARD|TEA|COFFEE|SNACK|ICE|LOLLY|PAN|MILK",
    ),
    (
        "Toys & games",
        "TOY|TOYS|JIGSAW|GAME|GAMES|DOLLY|DOLL|DOLLS|PUZZLE|PUZZLES|CHILDRENS|CHILDS|KIDS|SPACEBOY|"
        "SKIPPING ROPE|SOLDIER|SOLDIERS|TEDDY|COLOURING|PLAYHOUSE|SPINNING TOP|DOMINOES|MARBLES|"
        "KNITTING|FELTCRAFT|BABY|MAGIC|KITE|BALL|BLOCKS|PAINT SET|HELICOPTER|PIGGY",
    ),
    (
        "Garden & outdoors",
        "GARDEN|WATERING CAN|PLANT|PLANTER|POT|POTS|BIRD FEEDER|BIRDHOUSE|BIRD HOUSE|PARASOL|PICNIC|"
        "SEED|SEEDS|TRELLIS|GNOME|WINDMILL|CHIME|CHIMES|SPADE|TROWEL|HERB|OUTDOOR|BEACH|BUCKET|HAMMOCK",
    ),
    (
        "Bath & beauty",
        "BATHROOM|BATH|SOAP|SPONGE|MAKE UP|MAKEUP|TOILETRY|LIP GLOSS|LIPSTICK|NAIL|COMPACT MIRROR|"
        "TOOTHBRUSH|TOWEL|SHOWER|PERFUME|COSMETIC|WASH|FLANNEL",
    ),
    (
        "Storage & boxes",
        "BOX|BOXES|BASKET|BASKETS|STORAGE|DRAWER|DRAWERS|CABINET|CHEST|CRATE|TRUNK|HOLDER|ORGANISER|"
        "CADDY|RACK|CASE|SHELF|STAND|CONTAINER|BIN",
    ),
    (
        "Home decor",
        "SIGN|SIGNS|MIRROR|FRAME|FRAMES|PHOTOFRAME|CLOCK|CUSHION|CUSHIONS|COVER|DOORMAT|MAT|HOOK|HOOKS|"
        "HANGER|HANGERS|WALL|DECORATION|DECORATIONS|ORNAMENT|VASE|WREATH|PHOTO|KNOB|KNOBS|TILE|CURTAIN|"
        "THROW|BLANKET|DOORSTOP|QUILT|MAGNET|MAGNETS|PLAQUE|BELL|BELLS|DOOR|HANGING|BUTTERFLY|"
        "CHANDELIER|FLOCK|PICTURE|ART|MOBILE|LAMPSHADE|PAPERWEIGHT|FEATHER|FLOWERS|FLOWER|GLOBE|CHAIR|"
        "STOOL|HOT WATER BOTTLE|WARMER",
    ),
)
_RULES = [(category, tuple(keywords.split("|"))) for category, keywords in CATEGORY_RULES]
_WORDS = re.compile(r"[A-Z0-9'&+\-]+")


def categorise(description: str) -> str:
    """The category a product description falls into, by the first matching rule, else "Other"."""
    text = " " + " ".join(_WORDS.findall(description.upper())) + " "
    for category, keywords in _RULES:
        if any(f" {keyword} " in text for keyword in keywords):
            return category
    return OTHER


def stock_for(sku: str) -> int:
    """Deterministic demo stock: about one product in twenty is out of stock, a few run low."""
    # crc32, not hash(), which is salted per process.
    digest = zlib.crc32(sku.encode())
    return 0 if digest % 20 == 0 else 1 + (digest // 20) % 120


def is_product_code(code: str) -> bool:
    # Real stock codes start with a digit; POST, DOT, M, C2, BANK CHARGES, gift_0001_*, DCGS* etc. do not.
    return code[:1].isdigit()


class Skip:
    """Reasons a row is not imported, in the order they are tested."""

    MALFORMED = "malformed row"
    CANCELLATION = "cancellation"
    NON_PRODUCT = "non-product code"
    QUANTITY = "quantity <= 0"
    PRICE = "unit price <= 0"
    DUPLICATE = "duplicate row"


@dataclass
class ProductData:
    sku: str
    descriptions: Counter[str] = field(default_factory=Counter)
    prices: list[Decimal] = field(default_factory=list)

    @property
    def name(self) -> str:
        # Ties go to the description seen first (Counter keeps insertion order among equals).
        common = self.descriptions.most_common(1)
        return common[0][0] if common else f"Item {self.sku}"

    @property
    def price(self) -> Decimal:
        return Decimal(statistics.median(self.prices)).quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def category(self) -> str:
        return categorise(self.name)


@dataclass
class OrderData:
    number: str
    customer: str  # "" for a guest
    placed_at: datetime
    lines: list[tuple[str, int, Decimal]] = field(default_factory=list)  # (sku, quantity, unit price)


@dataclass
class RetailData:
    products: dict[str, ProductData] = field(default_factory=dict)
    orders: dict[str, OrderData] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    rows: int = 0

    @property
    def customers(self) -> set[str]:
        return {order.customer for order in self.orders.values()} - {""}

    @property
    def line_count(self) -> int:
        return sum(len(order.lines) for order in self.orders.values())


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a .csv or .csv.gz file in the original column layout."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}.")
        yield from reader


def parse(rows: Iterable[dict[str, str]]) -> RetailData:
    """Clean rows into products (clean lines only) and orders, counting every row skipped by reason."""
    data = RetailData()
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        data.rows += 1
        invoice, code = row["InvoiceNo"].strip(), row["StockCode"].strip()
        if invoice.upper().startswith("C"):
            data.skipped[Skip.CANCELLATION] += 1
            continue
        if not is_product_code(code):
            data.skipped[Skip.NON_PRODUCT] += 1
            continue
        try:
            quantity = int(row["Quantity"])
            price = Decimal(row["UnitPrice"])
            placed_at = datetime.fromisoformat(row["InvoiceDate"].strip()).replace(tzinfo=LONDON)
        except (ValueError, InvalidOperation):
            data.skipped[Skip.MALFORMED] += 1
            continue
        if quantity <= 0:
            data.skipped[Skip.QUANTITY] += 1
            continue
        if not price.is_finite() or price <= 0:
            data.skipped[Skip.PRICE] += 1
            continue
        key = tuple(row[column] for column in COLUMNS)
        if key in seen:
            data.skipped[Skip.DUPLICATE] += 1
            continue
        seen.add(key)

        product = data.products.get(code)
        if product is None:
            product = data.products[code] = ProductData(code)
        description = " ".join(row["Description"].split())
        if description:
            product.descriptions[description] += 1
        product.prices.append(price)

        order = data.orders.get(invoice)
        if order is None:
            customer = row["CustomerID"].strip().split(".", 1)[0]  # "17850.0" -> "17850"
            order = data.orders[invoice] = OrderData(invoice, customer, placed_at)
        order.lines.append((code, quantity, price.quantize(CENT, rounding=ROUND_HALF_UP)))
    return data
