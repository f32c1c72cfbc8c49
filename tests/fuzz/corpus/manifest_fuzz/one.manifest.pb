bitbyte 0.1.0€€!333333Ó?"2
"/tmp/bitbyte-seeds-6sLjIo/doc0.txtÜÏ¿æ*VX *š *	Â 2>
 train-00000-f73b7b27e2a25a13.bbs(€0¨8@IJ«þ›xQÁöÒÄ°ä2B
 train-00001-57ac9fd90b2276cc.bbs €(0“8@InëRJ…¿þñQßƒWùŒ1!2>
val-00000-8b4fcbc38580bd89.bbs(Â0¨8@IM9ÍH|ß|QgŒ\SµžSÂ: š)¯;e¡Î3÷f: Â)M9ÍH|ß|A3ê÷'x‡#yHYk›2î 