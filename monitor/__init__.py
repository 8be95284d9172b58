"""kpi-monitor: watches performance indicators and explains when one needs attention.

The data flow reads off the sub-packages:

    sources/ -> store/ -> rules/ -> alerts/ -> notify/
                   \\________ http/ (metrics, API, pages) observes all of it
"""

__version__ = "0.1.0"
