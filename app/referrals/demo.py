"""Demo data for `vtu seed` / `vtu dev`: two friends of the demo customer, one funded (so the referrals page
shows a bonus paid through the real bonus path). Idempotent: re-seeding changes nothing."""

from __future__ import annotations

from typing import Any

from app.core.demo_hooks import AFTER_SEED

DEMO_FRIENDS = [
    # email, name, phone, first transfer (kobo; 0 = none yet)
    ("femi.friend@demo.ng", "Femi Friend", "08030000004", 200_000),
    ("tunde@demo.ng", "Tunde Okon", "08030000005", 0),
]
REFERRER_EMAIL = "customer@demo.ng"


async def seed_referrals(session: Any) -> None:
    from app.accounts.services import SignUp, UserService
    from app.core.devtools import DEMO_PASSWORD
    from app.core.events import WalletFunded
    from app.ledger.accounts import MONNIFY_CLEARING, resolve_accounts
    from app.ledger.posting import Leg, post_transaction
    from app.referrals.config import current_config
    from app.referrals.service import award_funding_bonus

    users = UserService(session=session)
    referrer = await users.get_by_email(REFERRER_EMAIL)
    if referrer is None:
        return
    for email, name, phone, transfer in DEMO_FRIENDS:
        friend = await users.get_by_email(email)
        if friend is None:
            friend = await users.register(
                SignUp(
                    email=email,
                    password=DEMO_PASSWORD,
                    full_name=name,
                    phone=phone,
                    referral_code=referrer.referral_code,
                )
            )
        if not transfer:
            continue
        found = await resolve_accounts(session, system=[MONNIFY_CLEARING], wallets=[friend.id])
        reference = f"DEMO|referral|{friend.id}"
        posted = await post_transaction(
            session,
            key=f"demo:{reference}",
            kind="funding",
            legs=[Leg(found.system[MONNIFY_CLEARING], -transfer), Leg(found.wallets[friend.id], transfer)],
            memo="Demo bank transfer",
            created_by="demo-seed",
        )
        funded = WalletFunded(friend.id, transfer, transfer, reference, posted.transaction_id)
        await award_funding_bonus(session, funded, current_config())  # the real bonus path; once
    await session.commit()


AFTER_SEED.append(seed_referrals)
