bitbyte 0.1.0€€!333333Ó?"2
"/tmp/bitbyte-seeds-scf19p/doc0.txt¸Ëò¡8ê«Ú "2
"/tmp/bitbyte-seeds-scf19p/doc1.txt¼U†åfi‚§ "/
"/tmp/bitbyte-seeds-scf19p/doc2.txt™éØQ7ÛFï "2
"/tmp/bitbyte-seeds-scf19p/doc3.txtÄÃ9wô<­ "2
"/tmp/bitbyte-seeds-scf19p/doc4.txt°	œñFÜ3İ *ô *	ô 2>
 train-00000-442a9eddf9acad16.bbs(€0ô8@IQºÊ9Ö!h~QßŠß¥†o2C
 train-00001-7f94ae25e3d47a6a.bbs €(ô0ó8@I‡îÇ,ºúQ²—W²œU›Ş2>
val-00000-8ccc0f29df52f464.bbs(€0Î8@I¤l¿”Íe!Qƒœ,ÑÂ_ø2C
val-00001-e91464800eef58c4.bbs €(ô0†8@IzÙARAQaF½Ëw: ¸)Ëò¡8ê«Ú:¸ ¼)U†åfi‚§:)™éØQ7ÛFï: Ä)Ã9wô<­:Ä °	)œñFÜ3İA®³³cùºPY£´™˜¶6M