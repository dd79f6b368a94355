#!/usr/bin/env bash
# The browser that `make test` opens the book in: Debian's chromium and chromium-driver.
# Does nothing when both are on PATH; otherwise installs them with apt-get (through sudo
# when not root). On a system without apt-get, install Chromium and a chromedriver of the
# same major version by hand and put both on PATH as `chromium` and `chromedriver`.
set -euo pipefail

if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    exit 0
fi
if ! command -v apt-get > /dev/null; then
    echo "install-browser: chromium or chromedriver is missing and there is no apt-get here;" \
         "install Chromium and its chromedriver by hand (both on PATH), then run make test again" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo > /dev/null; then
        echo "install-browser: chromium or chromedriver is missing, and installing them needs root or sudo" >&2
        exit 1
    fi
    sudo=(sudo)
fi
echo "install-browser: installing Debian's chromium and chromium-driver (for the book's browser check)"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null
chromium --version
chromedriver --version
