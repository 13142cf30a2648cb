"""deep-performer: score-to-audio performance synthesis (docs/architecture.md maps the packages)."""
