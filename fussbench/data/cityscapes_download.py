"""Obtain Cityscapes: the two official zips, from a local folder or from the official site
behind a login, and extract the files the benchmark uses (train and val frames and their
``*_gtFine_labelIds.png``).

The login reads the credentials from the environment variables ``CITYSCAPES_USERNAME`` and
``CITYSCAPES_PASSWORD`` (never from params) and never prints them.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fussbench.data.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX, Cityscapes
from fussbench.data.fetch import TIMEOUT_S, copy_stream, extract_members, file_digest, open_zip
from fussbench.errors import FussbenchError

HOMEPAGE = "https://www.cityscapes-dataset.com"
USERNAME_VARIABLE = "CITYSCAPES_USERNAME"
PASSWORD_VARIABLE = "CITYSCAPES_PASSWORD"
DOWNLOADS = ".downloads"
"""Where the zips are downloaded to, inside the temporary dataset folder; removed after use."""

LAYOUT = (
    "leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png and "
    "gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)
MD5 = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass(frozen=True)
class Package:
    """One official Cityscapes zip.

    Attributes:
        file: its file name.
        package_id: its id on the download site (``file-handling/?packageID=<id>``).
        folder: its top folder, which holds ``<split>/<city>/`` files.
        suffix: the ending of the files the benchmark keeps.
    """

    file: str
    package_id: int
    folder: str
    suffix: str


PACKAGES = (
    Package("leftImg8bit_trainvaltest.zip", 3, "leftImg8bit", IMAGE_SUFFIX),
    Package("gtFine_trainvaltest.zip", 1, "gtFine", LABEL_SUFFIX),
)
SPLITS = tuple(Cityscapes.split_counts)


def select_cityscapes(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Keep the laid-out files ``<folder>/<split>/<city>/<key><suffix>`` of the packages."""
    suffixes = {package.folder: package.suffix for package in PACKAGES}
    return [
        path
        for path in paths
        if len(path.parts) == 4
        and path.parts[0] in suffixes
        and path.parts[1] in SPLITS
        and path.name.endswith(suffixes[path.parts[0]])
    ]


def obtain_cityscapes(
    tmp: Path,
    zips: Path | None,
    environ: Mapping[str, str] = os.environ,
    base_url: str = HOMEPAGE,
) -> dict[str, object]:
    """Lay Cityscapes out in ``tmp`` from the zips in the folder ``zips``, or, when ``zips`` is
    ``None``, from zips downloaded from ``base_url`` with the credentials in ``environ``.

    Returns:
        The origin fields of ``SOURCE.json``: where the zips came from and their sha256.

    Raises:
        FussbenchError: missing credentials or zips, a refused login, a failed download, or a
            zip that is not the expected package; each names the file and the fix.
    """
    if zips is not None:
        paths = {package: Path(zips) / package.file for package in PACKAGES}
        missing = [path.name for path in paths.values() if not path.is_file()]
        if missing:
            raise FussbenchError(
                f"download.cityscapes_zips={zips}: {' and '.join(missing)} missing there; "
                f"download them from {HOMEPAGE}/downloads/ into that folder, or set "
                f"download.cityscapes_zips to null to download with {USERNAME_VARIABLE} / "
                f"{PASSWORD_VARIABLE}"
            )
        origin: dict[str, object] = {"obtained_from": "local", "location": str(zips)}
    else:
        username, password = _credentials(environ)
        opener = _login(username, password, base_url)
        downloads = tmp / DOWNLOADS
        downloads.mkdir()
        paths = {package: downloads / package.file for package in PACKAGES}
        for package, path in paths.items():
            _download_package(opener, package, path, base_url)
        origin = {"obtained_from": "download", "location": base_url}
    origin["archives_sha256"] = {path.name: file_digest(path) for path in paths.values()}
    for package, path in paths.items():
        _extract_package(package, path, tmp)
    shutil.rmtree(tmp / DOWNLOADS, ignore_errors=True)
    return origin


def _credentials(environ: Mapping[str, str]) -> tuple[str, str]:
    """The username and password from ``environ``.

    Raises:
        FussbenchError: naming the unset variables (never their values) and the fixes.
    """
    missing = [name for name in (USERNAME_VARIABLE, PASSWORD_VARIABLE) if not environ.get(name)]
    if missing:
        raise FussbenchError(
            f"cityscapes needs a login and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set; export {USERNAME_VARIABLE} and "
            f"{PASSWORD_VARIABLE} (an account from {HOMEPAGE}/register/), or set "
            "download.cityscapes_zips in params.yaml to a folder holding "
            + " and ".join(package.file for package in PACKAGES)
        )
    return environ[USERNAME_VARIABLE], environ[PASSWORD_VARIABLE]


class _KeepRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect as an ``HTTPError`` instead of following it: the site answers a
    successful login, and a download without a valid session, with a redirect."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _login(username: str, password: str, base_url: str) -> urllib.request.OpenerDirector:
    """Log in and return an opener that carries the session cookie.

    Raises:
        FussbenchError: when the site cannot be reached or refuses the credentials.
    """
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _KeepRedirect()
    )
    opener.addheaders = [("User-Agent", "fussbench")]
    url = f"{base_url}/login/"
    form = {"username": username, "password": password, "submit": "Login"}
    try:
        with opener.open(url, timeout=TIMEOUT_S):
            pass  # the login form sets the session cookie
    except (OSError, http.client.HTTPException) as error:
        raise FussbenchError(
            f"cityscapes login page {url} not reachable ({error}); check the network, or set "
            "download.cityscapes_zips in params.yaml to a folder holding the zips"
        ) from error
    try:
        with opener.open(url, data=urllib.parse.urlencode(form).encode(), timeout=TIMEOUT_S):
            pass
    except urllib.error.HTTPError as error:
        if error.code == 302:
            return opener  # a login that succeeds redirects
        raise FussbenchError(
            f"cityscapes login at {url} failed (HTTP {error.code}); retry later, or set "
            "download.cityscapes_zips in params.yaml to a folder holding the zips"
        ) from error
    except (OSError, http.client.HTTPException) as error:
        raise FussbenchError(
            f"cityscapes login at {url} failed ({error}); check the network, or set "
            "download.cityscapes_zips in params.yaml to a folder holding the zips"
        ) from error
    raise FussbenchError(
        f"cityscapes refused the login at {url}; check {USERNAME_VARIABLE} and "
        f"{PASSWORD_VARIABLE} (log in at {HOMEPAGE}/login/ to test them)"
    )


def _download_package(
    opener: urllib.request.OpenerDirector, package: Package, target: Path, base_url: str
) -> None:
    """Download ``package`` to ``target`` and check it against the site's md5 sum.

    Raises:
        FussbenchError: naming the package and the fix when the download fails, the site
            answers with a web page instead of the zip, or the md5 sum differs.
    """
    url = f"{base_url}/file-handling/?packageID={package.package_id}"
    md5_url = f"{base_url}/md5-sum/?packageID={package.package_id}"
    fix = (
        f"retry, or download {package.file} by hand from {HOMEPAGE}/downloads/ into a folder "
        "named by download.cityscapes_zips in params.yaml"
    )
    try:
        with opener.open(md5_url, timeout=TIMEOUT_S) as response:
            expected = MD5.search(response.read().decode("utf-8", "replace"))
        with opener.open(url, timeout=TIMEOUT_S) as response:
            if "text/html" in response.headers.get("Content-Type", ""):
                raise FussbenchError(
                    f"{url} answered with a web page, not {package.file}: the account may "
                    f"lack access to the package; {fix}"
                )
            total = int(response.headers.get("Content-Length") or 0) or None
            copy_stream(response, target, total, package.file)
    except urllib.error.HTTPError as error:
        raise FussbenchError(
            f"download of {package.file} from {url} failed (HTTP {error.code}); {fix}"
        ) from error
    except (OSError, http.client.HTTPException) as error:
        raise FussbenchError(
            f"download of {package.file} from {url} failed ({error}); {fix}"
        ) from error
    if expected is None:
        raise FussbenchError(f"{md5_url} gave no md5 sum for {package.file}; {fix}")
    actual = file_digest(target, "md5")
    if actual != expected.group():
        raise FussbenchError(
            f"{package.file} from {url} has md5 {actual}, the site says {expected.group()}; {fix}"
        )


def _extract_package(package: Package, archive: Path, tmp: Path) -> None:
    """Extract the train and val files of ``package`` from ``archive`` into ``tmp``.

    Members are ``<package.folder>/<split>/<city>/<key><package.suffix>``, optionally below
    one more top folder.

    Raises:
        FussbenchError: when ``archive`` is not a zip or holds none of those files.
    """
    fix = (
        f"download {package.file} (packageID={package.package_id}) again from {HOMEPAGE}/downloads/"
    )
    with open_zip(archive, fix) as bundle:
        members: dict[PurePosixPath, zipfile.ZipInfo] = {}
        for info in bundle.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or len(parts) not in (4, 5):
                continue
            relative = PurePosixPath(*parts[-4:])
            if select_cityscapes([relative]) and relative.parts[0] == package.folder:
                members[relative] = info
        if not members:
            raise FussbenchError(
                f"{archive}: holds no {package.folder}/{{train,val}}/<city>/*{package.suffix}; "
                f"it is not Cityscapes' {package.file}; {fix}"
            )
        extract_members(bundle, members, tmp, fix)
