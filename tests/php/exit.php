<?php
echo "before exit";
exit(3);
echo "never";
