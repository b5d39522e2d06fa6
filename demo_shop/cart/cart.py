"""A session cart: product id -> quantity."""


class SessionCart:
    session_key = "cart"

    def __init__(self, request) -> None:
        self.session = request.session
        self.lines: dict[str, int] = dict(self.session.get(self.session_key, {}))

    def __len__(self) -> int:
        return sum(self.lines.values())
