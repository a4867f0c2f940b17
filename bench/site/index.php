<?php
// Front controller of the benchmark site: every unmatched path lands here.
echo "isola benchmark site\n";
