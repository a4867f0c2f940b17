<?php
echo "FRONT-CONTROLLER uri=", $_SERVER['REQUEST_URI'], " script=", $_SERVER['SCRIPT_NAME'];
