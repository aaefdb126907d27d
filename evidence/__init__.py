"""``make evidence``: the course's central claim over several seeds (see ``__main__``)."""
