<?php echo "DIR-INDEX-PHP";
