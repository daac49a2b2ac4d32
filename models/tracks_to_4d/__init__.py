"""TracksTo4D: 2-D point tracks of a video window → camera poses and low-rank dynamic 3-D points."""
