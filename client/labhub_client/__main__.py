from labhub_client.cli import main

raise SystemExit(main())
