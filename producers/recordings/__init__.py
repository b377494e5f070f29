"""Recorded IQ as receivers: KiwiSDR GPS-stamped WAV files and SigMF recordings.

* :mod:`.kiwi_wav` reads (and writes) KiwiSDR IQ recordings and fits their GPS time base;
* :mod:`.replay` publishes recordings to the IQ topic, paced or as fast as possible;
* :mod:`.sigmf_io` replays SigMF recordings and records the IQ topic as SigMF;
* :mod:`.gpstime` converts GPS week time to UTC with the leap-second table.
"""
