# -*- coding: utf-8 -*-
# Copyright: vfio.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small text helpers shared by the controller's plugin_utils."""


def shorten(text, limit=80):
    """``text`` as a string of at most ``limit`` characters, for an error message."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
