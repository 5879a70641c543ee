"""The page in a real browser: Debian's chromium and chromedriver, driven by Selenium.

Both paths are given explicitly, so Selenium never looks for or downloads a driver. Skipped with
the reason when they are missing locally; CI installs them (.ci/install-browser).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.serve.helpers import confident_test_digits

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 60  # seconds an explicit wait may take on a busy machine; passing waits return at once

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="chromium and chromedriver not installed (apt-get install chromium chromium-driver; "
        "CI runs .ci/install-browser)",
    ),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    selenium = pytest.importorskip("selenium", reason="selenium is not installed (the test extra)")
    del selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1200,1000",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT).until(
        ec.text_to_be_present_in_element_attribute(("id", "status"), "data-state", "ready")
    )
    return browser


def _wait(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT)


def _top_class(driver) -> str:
    return driver.find_element("id", "top-class").text


def test_model_card_is_shown(page):
    card = page.find_element("id", "model-card").text
    assert "lenet5" in card and "61,706" in card
    assert page.find_element("id", "canvas").is_displayed()  # one-channel model: drawing offered
    _wait(page).until(
        lambda d: d.execute_script(
            "const i = document.getElementById('confusion-matrix'); return i.complete && i.naturalWidth > 0;"
        )
    )


def test_drawn_stroke_gets_a_prediction(page):
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = page.find_element("id", "canvas")
    actions = ActionChains(page)
    actions.move_to_element_with_offset(canvas, 0, -90).click_and_hold()
    for _ in range(9):
        actions.move_by_offset(0, 20)
    actions.release().perform()
    _wait(page).until(lambda d: len(d.find_elements("css selector", "#predictions li.prediction")) == 3)
    assert _top_class(page) in [str(i) for i in range(10)]
    bars = page.find_elements("css selector", "#predictions .probability")
    values = [float(b.text) for b in bars]
    assert values == sorted(values, reverse=True) and 0 < values[0] <= 1
    assert page.find_element("id", "error").get_attribute("hidden") is not None
    # the canvas is sent as an RGBA PNG of gray content, framed like MNIST: nothing unlike the training images
    assert page.find_element("id", "warnings").get_attribute("hidden") is not None


def test_uploaded_mnist_digit_is_ranked_first_with_its_gradcam(page, mnist_run, tmp_path):
    _, images, labels = confident_test_digits(mnist_run, 1, threshold=0.95)
    path = tmp_path / f"mnist-test-digit-{labels[0]}.png"
    Image.fromarray(images[0, ..., 0]).save(path)
    page.find_element("id", "file-input").send_keys(os.fspath(path))
    _wait(page).until(lambda d: _top_class(d) != "–")
    assert _top_class(page) == mnist_run.class_names[labels[0]]
    first = page.find_element("css selector", "#predictions li.prediction")
    assert first.get_attribute("data-class") == mnist_run.class_names[labels[0]]
    _wait(page).until(
        lambda d: d.execute_script(
            "const i = document.getElementById('gradcam'); return i.complete && i.naturalWidth >= 128;"
        )
    )
    assert page.find_element("id", "gradcam").get_attribute("src").startswith("data:image/png;base64,")


def test_corrupt_file_shows_the_error(page, tmp_path):
    from selenium.webdriver.support import expected_conditions as ec

    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(200))
    page.find_element("id", "file-input").send_keys(os.fspath(path))
    _wait(page).until(ec.visibility_of_element_located(("id", "error")))
    message = page.find_element("id", "error").text
    assert "broken.png" in message and "not a readable image" in message
    assert page.find_elements("css selector", "#predictions li") == []
