"""The 30-day time to live: decide what has expired in a group's FTP directory, then delete it safely."""
