"""The ingress's files: `/static/` (the GUI's configuration and the environment's description) and `/admin/`.

`/admin/` serves an Admin GUI build as upstream's GUI image (nginx) does: the build has one folder per locale
(`en/`, `fr/`), each with its `index.html` and the bundles; a path that is not a file of the build (a deep link
such as `/admin/en/sessions`) gets its locale's `index.html`, so the GUI's router takes over, and `/admin/`
goes to the English one. Without a build, `/admin/` redirects to the project's own console (`/console/`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

#: What `/static/<name>` answers when the deployment wrote no such file.
DEFAULT_STATIC: dict[str, object] = {
    "gui_configuration": {},
    "environment.json": {"name": "ArmoniK", "version": "", "description": "", "color": ""},
}

#: Where `/admin/` goes without a build: the project's own console, served by the ingress too.
CONSOLE = "/console/"


def _inside(root: Path, relative: str) -> Path | None:
    """`root/relative` when it stays inside `root` (no `..` escape), else None."""
    candidate = (root / relative).resolve()
    return candidate if candidate.is_relative_to(root) else None


class StaticFiles:
    """`/static/<name>`: the deployment's files (name -> JSON content), or a default for those the GUI asks for."""

    def __init__(self, files: dict[str, object]) -> None:
        self._files = {**DEFAULT_STATIC, **files}

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name in self._files:
            return JSONResponse(self._files[name], headers={"Cache-Control": "no-cache"})
        return Response("not found\n", 404, media_type="text/plain")


class AdminGui:
    """`/admin/...` from a build folder (None: the project's console instead)."""

    def __init__(self, directory: Path | None) -> None:
        # a folder not there (yet): the build is taken at deploy time and may not be had; the console serves
        self._root = directory.resolve() if directory and directory.is_dir() else None
        locales = (
            sorted(p.name for p in self._root.iterdir() if (p / "index.html").is_file()) if self._root else []
        )
        self.locales = locales
        self.default_locale = "en" if "en" in locales else (locales[0] if locales else None)

    async def handle(self, request: Request) -> Response:
        rest = request.path_params.get("path", "")
        if self._root is None or self.default_locale is None:
            return RedirectResponse(CONSOLE, 302)
        locale, _, inner = rest.partition("/")
        if locale not in self.locales:
            return RedirectResponse(f"/admin/{self.default_locale}/", 302)
        root = self._root / locale
        path = _inside(root, inner) if inner else None
        if path is not None and path.is_file():
            return FileResponse(path)
        # A deep link: the locale's page, never cached, so a new build is picked up.
        return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})
