"""Planning: the configs (``config``, ``config_edit``), learning what scripts declare without
importing them in the runner (``describe``), and the queue as configs and scripts now stand
(``planner``)."""
