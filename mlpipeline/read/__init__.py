"""The read model: the questions people ask (``queries``), the runner's status and the requests
door (``status``), cached outputs read back (``outputs``), and tables, CSV and JSON (``render``)."""
