"""Pure domain rules: no Flask, no database, fast to test."""
