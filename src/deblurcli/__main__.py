"""``python -m deblurcli`` runs the ``deblur`` command."""

from deblurcli.cli import main

if __name__ == "__main__":
    main()
