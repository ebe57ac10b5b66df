// Headless Chromium for the browser tests, through playwright-core: /usr/bin/chromium unless
// GID_CHROMIUM says otherwise, without anything that would reach the network or a GPU.

import { chromium } from "playwright-core";

const CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

export function launchChromium() {
    return chromium.launch({
        executablePath: process.env.GID_CHROMIUM ?? "/usr/bin/chromium",
        args: CHROMIUM_FLAGS,
    });
}
