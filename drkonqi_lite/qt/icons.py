"""Icons: our symbolic SVGs from resources/icons, drawn in the palette's text colour.

The SVGs use `currentColor`; it is replaced by the window text colour of the current palette
(and the disabled text colour for the disabled state), so the icons follow the system palette,
dark mode included. Program icons come from the icon theme (the name a .desktop file gives) with
our generic program icon as the fallback.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from drkonqi_lite.adapters.resources import resource_dir

ICON_DIR = resource_dir() / "icons"
SIZES = (16, 22, 32, 48)


def _pixmap(svg: bytes, size: int) -> QPixmap:
    renderer = QSvgRenderer(QByteArray(svg))
    pixmap = QPixmap(QSize(size, size))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return pixmap


class IconSet:
    """Symbolic icons for one palette, cached by name."""

    def __init__(self, palette: QPalette) -> None:
        self._normal = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText)
        self._disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        self._cache: dict[str, QIcon] = {}
        self._programs: dict[str, QIcon] = {}

    def get(self, name: str) -> QIcon:
        """resources/icons/NAME.svg in the palette's colours (an empty icon if missing)."""
        icon = self._cache.get(name)
        if icon is not None:
            return icon
        icon = QIcon()
        path = ICON_DIR / f"{name}.svg"
        if path.is_file():
            text = path.read_bytes()
            for color, mode in ((self._normal, QIcon.Mode.Normal),
                                (self._disabled, QIcon.Mode.Disabled)):  # fmt: skip
                svg = text.replace(b"currentColor", color.name().encode())
                for size in SIZES:
                    icon.addPixmap(_pixmap(svg, size), mode)
        self._cache[name] = icon
        return icon

    def program(self, theme_name: str) -> QIcon:
        """The program's icon from the theme (or an installed absolute path), else ours."""
        icon = self._programs.get(theme_name)
        if icon is not None:
            return icon
        icon = QIcon()
        if theme_name.startswith("/") and Path(theme_name).is_file():
            icon = QIcon(theme_name)
        elif theme_name and QIcon.hasThemeIcon(theme_name):
            icon = QIcon.fromTheme(theme_name)
        if icon.isNull():
            icon = self.get("program")
        self._programs[theme_name] = icon
        return icon
