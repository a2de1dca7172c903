"""The store console and the command center in a real browser, walked as people walk them: store
staff sign in with their key, see new work arrive without reloading, pick it, hand it over, find
stock nearest first, take a return and see the refund first; an admin watches the command
center. Screenshots of each screen go to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import LISBON, Retail, Stack, address, near, ok
from tests.support.browser import screenshot
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# New work must show within 5 s of being there; routing and the reservation come first.
ARRIVES_MS = 20_000
HOSTILE = "<script>window.hacked = 1</script>"


async def key_of(retail: Retail, role: str, **binding: Any) -> dict[str, Any]:
    """A new API key (with its secret) made by the admin."""
    created: dict[str, Any] = ok(
        await retail.admin.post(
            "/v1/admin/api-keys", json={"role": role, "name": f"{role} {retail.tag}", **binding}
        )
    )
    return created


async def sign_in(page: Page, stack: Stack, api_key: str) -> None:
    await page.goto(f"{stack.console_url}/sign-in")
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Sign in").click()


async def every_control_is_labelled(page: Page) -> None:
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.name || el.id)"""
    )
    assert unlabelled == [], f"controls without a label on {page.url}: {unlabelled}"


CONTRAST = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const [r, g, b, a] = rgb(getComputedStyle(el).backgroundColor);
      if (a === undefined || a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const failing = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === "hidden" || el.offsetParent === null) continue;
    const [fg, bg] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) failing.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return failing;
}"""


async def text_has_contrast(page: Page) -> None:
    """WCAG AA: 4.5:1 for text, 3:1 for large text, against the background it is shown on."""
    failing = await page.evaluate(CONTRAST)
    assert failing == [], f"text below WCAG AA contrast on {page.url}: {failing}"


async def nothing_ran(page: Page) -> None:
    assert await page.evaluate("() => window.hacked === undefined"), "injected script ran"


@pytest.mark.parametrize("viewport", ["tablet"])
async def test_store_staff_take_a_click_and_collect_from_arrival_to_handover_and_a_return(
    retail: Retail, page: Page, stack: Stack
) -> None:
    store = await retail.location("store", "store", near(LISBON, 1))
    await retail.location("far-store", "store", near(LISBON, 20))
    sku = retail.sku("lantern")
    await retail.price(sku, 2500)
    await retail.stock(store, sku, 5)
    ok(await retail.admin.post("/v1/admin/products", json={"sku": sku, "name": f"Storm lantern {HOSTILE}"}))  # fmt: skip
    await retail.routing_sees(sku, store, 5)
    staff = await key_of(retail, "store", store_id=store)
    shop = await retail.key("shop", channel="web")

    await sign_in(page, stack, staff["api_key"])
    await expect(page.get_by_role("heading", name=f"Work at {store}")).to_be_visible()
    await expect(page.get_by_text("Nothing to do right now.")).to_be_visible()
    await every_control_is_labelled(page)
    await text_has_contrast(page)

    # A customer orders online: the order appears on the open page, marked new.
    order_id = await retail.place(shop, {sku: 2}, {"method": "pickup", "store_id": store})
    row = page.get_by_role("row").filter(has_text=order_id)
    await expect(row).to_be_visible(timeout=ARRIVES_MS)
    await expect(row.get_by_text("New")).to_be_visible()
    await screenshot(page, "store-queue")

    # Why here, in plain words; then picked and handed over.
    await row.get_by_role("link", name=order_id).click()
    await expect(page.get_by_role("heading", name=f"Why this came to {store}")).to_be_visible()
    await every_control_is_labelled(page)
    await text_has_contrast(page)
    await screenshot(page, "store-fulfillment")
    await page.get_by_role("button", name="Picked: mark ready for collection").click()
    await expect(page.get_by_text("Marked ready")).to_be_visible()
    await page.get_by_label("Order number the customer shows").fill("ord_not_this_one")
    await page.get_by_role("button", name="Hand over").click()
    await expect(page.get_by_text("That order number is not this collection's")).to_be_visible()
    await page.get_by_label("Order number the customer shows").fill(order_id)
    await page.get_by_role("button", name="Hand over").click()
    await expect(page.get_by_text(f"Handed over: order {order_id} is collected.")).to_be_visible()
    assert (await retail.until(shop, order_id, "completed"))["status"] == "completed"

    # Stock anywhere, found by a word of its name, nearest first; the name is shown as text.
    await page.get_by_role("link", name="Find stock").click()
    await page.get_by_label("Sku or product name").fill("storm")
    await expect(page.get_by_role("heading", name=re.compile(sku))).to_be_visible()
    await expect(page.get_by_text(HOSTILE)).to_be_visible()
    await nothing_ran(page)
    first = page.locator("section.sku tbody tr").first
    await expect(first.get_by_role("cell").first).to_have_text(f"store ({retail.tag})")
    await expect(first).to_contain_text("km")
    await screenshot(page, "store-stock")

    # A return at the counter: the refund is shown before anything is done.
    await page.get_by_role("link", name="Returns").click()
    await page.get_by_label("Order number").fill(order_id)
    await page.get_by_role("button", name="Find the order").click()
    await every_control_is_labelled(page)
    await text_has_contrast(page)
    await page.get_by_label(f"Units of {sku} back").select_option("1")
    await page.get_by_role("button", name="Show the refund").click()
    await expect(page.get_by_text("Refund: 25.00 EUR")).to_be_visible()
    await screenshot(page, "store-return")
    await page.get_by_role("button", name="Confirm the return and refund").click()
    await expect(page.get_by_text("Refund 25.00 EUR")).to_be_visible()

    async def restocked() -> bool:
        # 5, two collected, one back on the shelf (inventory restocks it over Kafka).
        return (await retail.available(sku, store))["on_hand"] == 4

    await eventually(restocked, timeout=20)


@pytest.mark.parametrize("viewport", ["tablet"])
async def test_store_staff_reject_with_a_reason_move_a_pickup_and_adjust_stock(
    retail: Retail, page: Page, stack: Stack
) -> None:
    store = await retail.location("store", "store", near(LISBON, 2))
    other = await retail.location("other-store", "store", near(LISBON, 4))
    sku, spare = retail.sku("stove"), retail.sku("fuel")
    for item in (sku, spare):
        await retail.price(item, 4000)
        await retail.stock(store, item, 3)
        await retail.stock(other, item, 3)
    await retail.routing_sees(spare, other, 3)
    staff = await key_of(retail, "store", store_id=store)
    shop = await retail.key("shop", channel="web")
    await sign_in(page, stack, staff["api_key"])

    moving = await retail.place(shop, {sku: 1}, {"method": "pickup", "store_id": store})
    rejected = await retail.place(shop, {spare: 1}, {"method": "pickup", "store_id": store})
    for order_id in (moving, rejected):
        await expect(page.get_by_role("row").filter(has_text=order_id)).to_be_visible(
            timeout=ARRIVES_MS
        )

    # The customer will collect elsewhere.
    await page.get_by_role("link", name=moving).click()
    await page.get_by_label("The customer wants to collect at").select_option(other)
    await page.get_by_role("button", name="Change the pickup store").click()
    await expect(page.get_by_text(f"The customer now collects at {other}.")).to_be_visible()

    async def moved() -> bool:
        order = ok(await shop.get(f"/v1/orders/{moving}"))
        return any(
            f["location_id"] == other and f["status"] == "reserved" for f in order["fulfillments"]
        )

    await eventually(moved, timeout=20)

    # The units are not on the shelf: rejected with a reason code, routed elsewhere.
    await page.get_by_role("link", name="Queue", exact=True).click()
    await page.get_by_role("link", name=rejected).click()
    await page.get_by_label("Cannot serve it because").select_option("not_in_stock")
    await page.get_by_label("In a few words").fill(f"shelf empty {HOSTILE}")
    await page.get_by_role("button", name="Reject: route it elsewhere").click()
    await expect(page.get_by_text("Rejected: the order is routed again elsewhere.")).to_be_visible()
    await expect(page.get_by_text(f"not_in_stock: shelf empty {HOSTILE}")).to_be_visible()
    await nothing_ran(page)

    # Ship from store: a delivery only this store has the stock for.
    parcel = retail.sku("tarp")
    await retail.price(parcel, 1500)
    await retail.stock(store, parcel, 1)
    await retail.routing_sees(parcel, store, 1)
    shipped = await retail.place(
        shop, {parcel: 1}, {"method": "delivery", "address": address(near(LISBON, 2.5))}
    )
    await retail.until(shop, shipped, "confirmed")
    await page.get_by_role("link", name="Queue", exact=True).click()
    await page.get_by_role("link", name=shipped).click(timeout=ARRIVES_MS)
    await page.get_by_label("Carrier").fill("CTT")
    await page.get_by_label("Tracking number").fill(f"CTT-{retail.tag}")
    await page.get_by_role("button", name="Shipped").click()
    await expect(page.get_by_text("Shipped.")).to_be_visible()
    await expect(page.get_by_text(f"CTT CTT-{retail.tag}")).to_be_visible()

    # A delivery arrived: three more.
    await page.get_by_role("link", name="Adjust stock").click()
    await every_control_is_labelled(page)
    await text_has_contrast(page)
    await page.get_by_label("Sku").fill(sku)
    await page.get_by_label("Change in units (negative to remove)").fill("3")
    await page.get_by_label("Reason").select_option("receipt")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.get_by_text(f"{sku} at {store}:")).to_be_visible()
    # The gateway's refusal reads as a message, not as a stack trace.
    await page.get_by_label("Sku").fill(sku)
    await page.get_by_label("Change in units (negative to remove)").fill("-100")
    await page.get_by_label("Reason").select_option("damage")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator(".flash.error")).to_be_visible()
    assert "Traceback" not in await page.content()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.goto(f"{stack.console_url}/store")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_revoked_key_ends_the_session_within_seconds(
    retail: Retail, page: Page, stack: Stack
) -> None:
    store = await retail.location("store", "store", near(LISBON, 3))
    staff = await key_of(retail, "store", store_id=store)
    # By keyboard alone: the key field has the focus, Enter signs in.
    await page.goto(f"{stack.console_url}/sign-in")
    await page.keyboard.type(staff["api_key"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Work at {store}")).to_be_visible()
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "omniroute_console")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert staff["api_key"] not in str(cookies)

    ok(await retail.admin.delete(f"/v1/admin/api-keys/{staff['key_id']}"))
    await expect(page.get_by_text("Your session has ended")).to_be_visible(timeout=15_000)
    await page.goto(f"{stack.console_url}/store")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert staff["api_key"] not in page.url
    # Nothing of the key in any service's log, the console's included.
    logs = sorted((stack.data_dir / "logs").glob("*.log"))
    assert {"console.log", "gateway.log"} <= {log.name for log in logs}
    for log in logs:
        assert staff["api_key"] not in log.read_text(errors="replace"), log.name


async def test_an_admin_sees_a_new_order_on_the_command_center_within_seconds(
    retail: Retail, page: Page, stack: Stack
) -> None:
    store = await retail.location("store", "store", near(LISBON, 6))
    sku = retail.sku("tent")
    await retail.price(sku, 19900)
    await retail.stock(store, sku, 2)
    await retail.routing_sees(sku, store, 2)
    shop = await retail.key("shop", channel="app")

    await sign_in(page, stack, stack.admin_key)
    await expect(page.get_by_role("heading", name="Command center")).to_be_visible()
    store_row = page.get_by_role("row").filter(has_text=f"store ({retail.tag})")
    await expect(store_row).to_be_visible()  # a store without work is listed too
    await expect(store_row.get_by_role("cell").nth(0)).to_have_text("0")

    await retail.place(shop, {sku: 1}, {"method": "pickup", "store_id": store})
    await expect(store_row.get_by_role("cell").nth(0)).to_have_text("1", timeout=ARRIVES_MS)
    await expect(page.locator("#orders-chart")).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text="app").first).to_be_visible()
    await text_has_contrast(page)
    await screenshot(page, "command-center")
