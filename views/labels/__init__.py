"""The label tables of :mod:`views.i18n`, one module per app (Chinese, English)."""
