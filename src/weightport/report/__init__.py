"""Reports of a verify run for machines and browsers: JUnit XML, HTML."""
