"""`vulfix.inventory`: hosts, vulnerabilities (with KB patches, packages, services) and
findings, the import document that describes them, and the rules the read actions apply."""
