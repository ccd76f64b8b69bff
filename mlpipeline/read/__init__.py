"""The read model: the questions people ask (``queries``), the runner's status and the requests
door (``status``), cached outputs read back (``outputs``), and tables, CSV and JSON (``render``);
from many runs to an answer: a search read whole (``search``), parameter importance
(``importance``), seeds as mean ± std (``seeds``)."""
