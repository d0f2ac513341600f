"""Who did something: a person, the system, a channel, a carrier or an integration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orders.models import ActorKind


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str = ""
    user: Any = None  # the Django user when kind == "user"; permissions are checked against it

    @classmethod
    def system(cls, name: str = "") -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=name)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(kind=ActorKind.USER, id=user.get_username(), user=user)

    @classmethod
    def channel(cls, slug: str) -> Actor:
        return cls(kind=ActorKind.CHANNEL, id=slug)

    @classmethod
    def carrier(cls, code: str) -> Actor:
        return cls(kind=ActorKind.CARRIER, id=code)

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, str] | None) -> Actor:
        """Rebuild an actor passed to a task (ids only); a user actor is looked up again."""
        if not data:
            return cls.system()
        if data.get("kind") == ActorKind.USER:
            from django.contrib.auth import get_user_model

            user_model = get_user_model()
            user = user_model.objects.filter(**{user_model.USERNAME_FIELD: data.get("id")}).first()
            if user is not None:
                return cls.for_user(user)
        return cls(kind=data.get("kind", ActorKind.SYSTEM), id=data.get("id", ""))
