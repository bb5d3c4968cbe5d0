"""``python -m deblurcli.cli`` runs the ``deblur`` command (as ``python -m deblurcli``)."""

from deblurcli.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
