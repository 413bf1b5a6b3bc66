/*
 * tests/lvm/seeds.h - real `lvm lvs --reportformat json --units b --nosuffix
 * --binary -a -o VSS_LVM_FIELDS` output (lvm 2.03.16 in the guest of
 * tests/guest/), shared by the unit test and the fuzz target's seeds.
 */
#ifndef VSS_TESTS_LVM_SEEDS_H
#define VSS_TESTS_LVM_SEEDS_H

static const char lvm_seed_real[] =
	"  {\n      \"report\": [\n          {\n              \"lv\": [\n"
	"                  {\"lv_name\":\"[pool_tdata]\", \"vg_name\":\"vg0\", \"lv_uuid\":\"Xq1b2c-0000-0000-0000-0000-0000-000001\", \"lv_attr\":\"Twi-ao----\", \"lv_tags\":\"\", \"origin\":\"\", \"pool_lv\":\"\", \"segtype\":\"linear\", \"lv_size\":\"209715200\", \"vg_free\":\"281018368\", \"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"1\", \"snap_percent\":\"\", \"data_percent\":\"\", \"lv_snapshot_invalid\":\"0\"},\n"
	"                  {\"lv_name\":\"pool\", \"vg_name\":\"vg0\", \"lv_uuid\":\"r8Ftq5-3vtU-6t4J-4pOC-KAbh-EU7B-JpedCy\", \"lv_attr\":\"twi-aotz--\", \"lv_tags\":\"\", \"origin\":\"\", \"pool_lv\":\"\", \"segtype\":\"thin-pool\", \"lv_size\":\"209715200\", \"vg_free\":\"281018368\", \"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"2\", \"snap_percent\":\"5.66\", \"data_percent\":\"5.66\", \"lv_snapshot_invalid\":\"0\"},\n"
	"                  {\"lv_name\":\"vss-0e1100ed-b190-441a-9407-e0c55c676dfa\", \"vg_name\":\"vg0\", \"lv_uuid\":\"ETleaV-7KJI-iuu1-ch83-FYdj-EfF7-Zfd7CK\", \"lv_attr\":\"Vri-a-tz--\", \"lv_tags\":\"vss,vss.persistent,vss.set=3bc02c93-1bb8-4f78-bf70-1ec54af78c89\", \"origin\":\"thin1\", \"pool_lv\":\"pool\", \"segtype\":\"thin\", \"lv_size\":\"104857600\", \"vg_free\":\"281018368\", \"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"9\", \"snap_percent\":\"\", \"data_percent\":\"11.06\", \"lv_snapshot_invalid\":\"0\"},\n"
	"                  {\"lv_name\":\"s2\", \"vg_name\":\"vg0\", \"lv_uuid\":\"fWnntg-fIZX-dyEs-deLC-ivpj-Iqyo-qyprSf\", \"lv_attr\":\"swi-I-s---\", \"lv_tags\":\"\", \"origin\":\"thick1\", \"pool_lv\":\"\", \"segtype\":\"linear\", \"lv_size\":\"20971520\", \"vg_free\":\"281018368\", \"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"8\", \"snap_percent\":\"100.00\", \"data_percent\":\"100.00\", \"lv_snapshot_invalid\":\"1\"},\n"
	"                  {\"lv_name\":\"thin1\", \"vg_name\":\"vg0\", \"lv_uuid\":\"aRZNO3-vUvj-QCJq-djQY-hE8W-8nsE-kTCVEW\", \"lv_attr\":\"Vwi-aotz--\", \"lv_tags\":\"\", \"origin\":\"\", \"pool_lv\":\"pool\", \"segtype\":\"thin\", \"lv_size\":\"104857600\", \"vg_free\":\"281018368\", \"lv_kernel_major\":\"254\", \"lv_kernel_minor\":\"4\", \"snap_percent\":\"11.06\", \"data_percent\":\"11.06\", \"lv_snapshot_invalid\":\"0\"}\n"
	"              ]\n          }\n      ]\n  }\n";

/* thin_delta --metadata-snap --snap1 1 --snap2 2 (thin-provisioning-tools 0.9). */
static const char thin_delta_seed[] =
	"<superblock uuid=\"\" time=\"1\" transaction=\"4\" data_block_size=\"128\" "
	"nr_data_blocks=\"3200\">\n  <diff left=\"1\" right=\"2\">\n"
	"    <different begin=\"14\" length=\"2\"/>\n"
	"    <right_only begin=\"16\" length=\"1\"/>\n  </diff>\n</superblock>\n";

#endif
