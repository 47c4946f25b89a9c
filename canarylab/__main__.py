from canarylab.cli import main

raise SystemExit(main())
