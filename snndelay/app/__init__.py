"""The application: runs, run directories, sweeps, launchers, comparisons, deploy, export."""
